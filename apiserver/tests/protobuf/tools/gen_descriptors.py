#!/usr/bin/env python3
"""Generates korral's protobuf message table (apiserver/src/protobuf/descriptors/*.rs)
from a kubectl binary, the most direct evidence of what kubectl sends:

- the FileDescriptorProtos gogo-protobuf compiles into it (field numbers,
  types, names, map entries, gogoproto.nullable = Go value vs pointer field);
- Go's reflection data for the same structs (json tags: omitempty, inline).

Usage (then `cargo fmt`):
    python3 gen_descriptors.py $(dirname $(readlink -f $(which kubectl)))/kubectl.1.33 \
        apiserver/src/protobuf/descriptors apiserver/tests/protobuf/descriptors
"""
import collections
import os
import re
import struct
import sys
import zlib

def varint(b, i):
    r = 0; s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i

def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            l, i = varint(b, i); v = b[i:i+l]; i += l
        elif wt == 1:
            v = b[i:i+8]; i += 8
        elif wt == 5:
            v = b[i:i+4]; i += 4
        else:
            raise ValueError(wt)
        yield num, v

TYPES = {1:'double',2:'float',3:'int64',4:'uint64',5:'int32',8:'bool',9:'string',11:'message',12:'bytes',13:'uint32',17:'sint32',18:'sint64'}

def parse_field(b):
    f = {'nullable': True, 'repeated': False}
    for n, v in fields(b):
        if n == 1: f['name'] = v.decode()
        elif n == 3: f['number'] = v
        elif n == 4: f['repeated'] = (v == 3)
        elif n == 5: f['type'] = TYPES[v]
        elif n == 6: f['type_name'] = v.decode()
        elif n == 8:
            for on, ov in fields(v):
                if on == 65001: f['nullable'] = bool(ov)
                if on == 65004: f['goname'] = ov.decode()
        elif n == 10: f['json_name'] = v.decode()
    return f

def parse_message(b, prefix, out):
    m = {'fields': [], 'map_entry': False}
    for n, v in fields(b):
        if n == 1: m['name'] = v.decode()
    full = prefix + '.' + m['name']
    for n, v in fields(b):
        if n == 2: m['fields'].append(parse_field(v))
        elif n == 3: parse_message(v, full, out)
        elif n == 7:
            for on, ov in fields(v):
                if on == 7: m['map_entry'] = bool(ov)
    m['full'] = full
    out[full] = m


def embedded_descriptors(data):
    """The gzipped FileDescriptorProtos gogo-protobuf registers, by file name."""
    out = {}
    for m in re.finditer(rb'\x1f\x8b\x08\x00\x00\x00\x00\x00', data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[m.start():m.start() + 2000000])
        except zlib.error:
            continue
        if len(raw) < 3 or raw[0] != 0x0a:
            continue
        name = raw[2:2 + raw[1]]
        if name.startswith(b'k8s.io/') and name.endswith(b'generated.proto'):
            out[name.decode()] = raw
    return out


def parse_descriptors(files):
    out = {}
    for b in files:
        pkg = None
        for n, v in fields(b):
            if n == 2: pkg = v.decode()
        for n, v in fields(b):
            if n == 4: parse_message(v, '.' + pkg, out)
    return out


def go_structs(data):
    """Go reflection data of a non-PIE amd64 Go binary: every struct's fields
    (name, tag, kind), with its package path and type name."""
    e_phoff = struct.unpack_from('<Q', data, 0x20)[0]
    e_phentsize, e_phnum = struct.unpack_from('<HH', data, 0x36)
    segs = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = struct.unpack_from('<IIQQQQQQ', data, e_phoff + i*e_phentsize)
        if p_type == 1: segs.append((p_vaddr, p_offset, p_filesz))
    def v2o(v):
        for va, off, sz in segs:
            if va <= v < va+sz: return off + (v-va)
        return None
    def o2v(o):
        for va, off, sz in segs:
            if off <= o < off+sz: return va + (o-off)
        return None
    def varint(b, i):
        r = 0; s = 0
        while True:
            c = b[i]; i += 1
            r |= (c & 0x7f) << s; s += 7
            if c < 0x80: return r, i
    def read_name(o):
        if o is None or o+2 >= len(data): return None
        flags = data[o]
        if flags > 0x0f: return None
        try:
            l, i = varint(data, o+1)
            if l == 0 or l > 100: return None
            n = data[i:i+l]
            if not re.fullmatch(rb'[A-Za-z_][A-Za-z0-9_]*', n): return None
            i += l; tag = ''
            if flags & 2:
                tl, i = varint(data, i)
                if tl > 3000: return None
                tag = data[i:i+tl].decode('latin1')
            return n.decode(), tag, bool(flags & 8)
        except IndexError:
            return None
    names = {}
    # a tag is json first, then any others (patchStrategy, ...), then protobuf
    for m in re.finditer(rb'json:"[^"]*"(?: [A-Za-z]+:"[^"]*")*? protobuf:"', data):
        t = m.start()
        for o in range(t-3, t-110, -1):
            r = read_name(o)
            if not r or not r[1]: continue
            l, i = varint(data, o+1); i += l; tl, i = varint(data, i)
            if i == t:
                names[o2v(o)] = r; break
    print('names', len(names), file=sys.stderr)
    def kind_of(tv):
        o = v2o(tv)
        if o is None: return None
        return data[o+23] & 0x1f
    KINDS = {1:'bool',2:'int',3:'int8',4:'int16',5:'int32',6:'int64',7:'uint',8:'uint8',9:'uint16',10:'uint32',11:'uint64',13:'float32',14:'float64',17:'array',20:'interface',21:'map',22:'ptr',23:'slice',24:'string',25:'struct'}
    entries = {}
    for va, off, sz in segs:
        start = off + ((8 - off % 8) % 8)
        for j, (q,) in enumerate(struct.iter_unpack('<Q', data[start:start + (sz - (start-off)) // 8 * 8])):
            if q in names:
                o = start + j*8
                if o + 24 > len(data): continue
                tv = struct.unpack_from('<Q', data, o+8)[0]
                k = kind_of(tv)
                if k is None: continue
                entries[o] = (names[q], KINDS.get(k, k))
    print('entries', len(entries), file=sys.stderr)
    # group into arrays: contiguous with stride 24, allowing untagged entries in between
    arrays = []
    seen = set()
    for o in sorted(entries):
        if o in seen: continue
        # walk back over any valid name entries
        s = o
        while True:
            p = s - 24
            q = struct.unpack_from('<Q', data, p)[0]
            r = read_name(v2o(q)) if q else None
            if r is None: break
            s = p
        fields = []
        p = s
        while True:
            q = struct.unpack_from('<Q', data, p)[0]
            r = read_name(v2o(q)) if q else None
            if r is None: break
            tv = struct.unpack_from('<Q', data, p+8)[0]
            k = kind_of(tv)
            # pointee kind for pointers / element kind not needed
            fields.append((r[0], r[1], KINDS.get(k, k)))
            seen.add(p)
            p += 24
        arrays.append((s, fields))
    print('arrays', len(arrays), file=sys.stderr)

    e_shoff = struct.unpack_from('<Q', data, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from('<HHH', data, 0x3a)
    shs = [struct.unpack_from('<IIQQQQIIQQ', data, e_shoff + i*e_shentsize) for i in range(e_shnum)]
    stro = shs[e_shstrndx][4]
    RODATA = None
    for sh in shs:
        nm = data[stro+sh[0]:data.index(b'\0', stro+sh[0])]
        if nm == b'.rodata': RODATA = sh[3]
    print('rodata', hex(RODATA), file=sys.stderr)
    def read_pkg(o):
        if o is None: return None
        try:
            l, i = varint(data, o+1)
            if l > 200: return None
            return data[i:i+l].decode('latin1')
        except IndexError: return None
    starts = {o2v(s): idx for idx, (s, f) in enumerate(arrays)}
    pkgs = collections.defaultdict(set)
    tnames = collections.defaultdict(set)
    for va, off, sz in segs:
        start = off + ((8 - off % 8) % 8)
        for j, (q,) in enumerate(struct.iter_unpack('<Q', data[start:start + (sz - (start-off)) // 8 * 8])):
            if q in starts:
                o = start + j*8
                idx = starts[q]
                n = len(arrays[idx][1])
                l, c = struct.unpack_from('<QQ', data, o+8)
                if l == n and c == n:
                    t0 = o - 56
                    tflag = data[t0 + 20]
                    soff = struct.unpack_from('<i', data, t0 + 40)[0]
                    tn = read_pkg(v2o(RODATA + soff))
                    if tn:
                        if tflag & 2: tn = tn[1:]
                        tnames[idx].add(tn)
                    if tflag & 1:
                        noff = struct.unpack_from('<i', data, o + 24)[0]
                        p = read_pkg(v2o(RODATA + noff))
                        if p: pkgs[idx].add(p)
    out = [(sorted(pkgs.get(i, [])), sorted(tnames.get(i, [])), f) for i, (s, f) in enumerate(arrays)]
    print('with pkg', sum(1 for p, t, f in out if p and t), file=sys.stderr)
    return out


# The Go packages korral decodes, each with its Rust module, its apiVersion
# (None for apimachinery packages, whose messages are parts of objects) and a
# title for the module's doc comment. The k8s.io/api packages are the ones of
# the kinds korral serves (schemas/src/kinds/builtin.rs, plus the review and
# subresource kinds the API server answers).
PACKAGES = [
    ('k8s.io/api/core/v1', 'core_v1', 'v1'),
    ('k8s.io/api/apps/v1', 'apps_v1', 'apps/v1'),
    ('k8s.io/api/batch/v1', 'batch_v1', 'batch/v1'),
    ('k8s.io/api/autoscaling/v1', 'autoscaling_v1', 'autoscaling/v1'),
    ('k8s.io/api/autoscaling/v2', 'autoscaling_v2', 'autoscaling/v2'),
    ('k8s.io/api/policy/v1', 'policy_v1', 'policy/v1'),
    ('k8s.io/api/networking/v1', 'networking_v1', 'networking.k8s.io/v1'),
    ('k8s.io/api/discovery/v1', 'discovery_v1', 'discovery.k8s.io/v1'),
    ('k8s.io/api/rbac/v1', 'rbac_v1', 'rbac.authorization.k8s.io/v1'),
    ('k8s.io/api/storage/v1', 'storage_v1', 'storage.k8s.io/v1'),
    ('k8s.io/api/scheduling/v1', 'scheduling_v1', 'scheduling.k8s.io/v1'),
    ('k8s.io/api/node/v1', 'node_v1', 'node.k8s.io/v1'),
    ('k8s.io/api/admissionregistration/v1', 'admissionregistration_v1', 'admissionregistration.k8s.io/v1'),
    ('k8s.io/api/certificates/v1', 'certificates_v1', 'certificates.k8s.io/v1'),
    ('k8s.io/api/events/v1', 'events_v1', 'events.k8s.io/v1'),
    ('k8s.io/api/coordination/v1', 'coordination_v1', 'coordination.k8s.io/v1'),
    ('k8s.io/api/authorization/v1', 'authorization_v1', 'authorization.k8s.io/v1'),
    ('k8s.io/api/authentication/v1', 'authentication_v1', 'authentication.k8s.io/v1'),
    ('k8s.io/apimachinery/pkg/apis/meta/v1', 'meta_v1', None),
    ('k8s.io/apimachinery/pkg/api/resource', 'resource', None),
    ('k8s.io/apimachinery/pkg/util/intstr', 'intstr', None),
    ('k8s.io/apimachinery/pkg/runtime', 'runtime', None),
]
# Whose descriptors kubectl does not embed: apiextensions.k8s.io/v1
# (k8s.io/apiextensions-apiserver is not linked into kubectl), so korral
# cannot take CustomResourceDefinitions as protobuf.

M = '.k8s.io.apimachinery.pkg.apis.meta.v1.'
OBJECT_META = M + 'ObjectMeta'
SPECIAL = {
    '.k8s.io.apimachinery.pkg.api.resource.Quantity': 'Quantity',
    '.k8s.io.apimachinery.pkg.util.intstr.IntOrString': 'IntOrString',
    M + 'Time': 'Time', M + 'MicroTime': 'MicroTime', M + 'Duration': 'Duration',
    M + 'FieldsV1': 'RawJson', '.k8s.io.apimachinery.pkg.runtime.RawExtension': 'RawJson',
    # named []string types: `type ExtraValue []string`
    '.k8s.io.api.authorization.v1.ExtraValue': 'StringList',
    '.k8s.io.api.authentication.v1.ExtraValue': 'StringList',
    '.k8s.io.api.certificates.v1.ExtraValue': 'StringList',
}


def proto_pkg(go_pkg):
    return go_pkg.replace('/', '.')


def split_full(full):
    """'.k8s.io.api.core.v1.PodSpec.NodeSelectorEntry' -> ('k8s.io.api.core.v1', ['PodSpec', 'NodeSelectorEntry'])"""
    parts = full[1:].split('.')
    k = next(i for i, p in enumerate(parts) if p[0].isupper())
    return '.'.join(parts[:k]), parts[k:]


def const_name(full):
    _, parts = split_full(full)
    s = '_'.join(parts)
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', s)
    s = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', s)
    return s.upper().replace('__', '_')


def kinds_of(msgs, arrays):
    """The top-level kinds of the API packages: every message whose Go struct
    embeds TypeMeta and whose field 1 is `metadata` ObjectMeta (objects,
    reviews, subresource bodies; not templates like PodTemplateSpec), as
    (apiVersion, kind, full message name), in package then name order."""
    typed = set()
    for pkgs, tnames, fs in arrays:
        if any(n == 'TypeMeta' and 'json:",inline"' in tag for n, tag, _ in fs):
            for p in pkgs:
                for t in tnames:
                    typed.add((p, t.rsplit('.', 1)[-1]))
    out = []
    for go_pkg, mod, api_version in PACKAGES:
        if api_version is None:
            continue
        prefix = '.' + proto_pkg(go_pkg) + '.'
        for full in sorted(msgs):
            if not full.startswith(prefix) or '.' in full[len(prefix):]:
                continue
            first = [f for f in msgs[full]['fields'] if f['number'] == 1]
            if first and first[0]['name'] == 'metadata' and first[0].get('type_name') == OBJECT_META \
                    and (go_pkg, full[len(prefix):]) in typed:
                out.append((api_version, full[len(prefix):], full))
    return out


def generate(msgs, arrays, out_dir):
    """Writes one Rust table file per package into out_dir, and kinds.rs."""
    modules = {proto_pkg(p): mod for p, mod, _ in PACKAGES}
    kinds = kinds_of(msgs, arrays)
    roots = [full for _, _, full in kinds] + [M + 'DeleteOptions']

    # closure
    order, seen = [], set()
    def visit(name):
        if name in seen: return
        seen.add(name); order.append(name)
        if name in SPECIAL: return
        for f in msgs[name]['fields']:
            if f['type'] == 'message': visit(f['type_name'])
    for r in roots: visit(r)

    TAG = re.compile(r'protobuf:"([a-z0-9]+),(\d+)(?:,(?:opt|rep|req))?(?:,name=([A-Za-z0-9_]+))?')
    JSON = re.compile(r'json:"([^",]*)((?:,[a-z]+)*)"')
    def arr_info(a):
        out = {}
        for goname, tag, kind in a:
            t = TAG.search(tag)
            if not t: continue
            j = JSON.search(tag)
            out[int(t.group(2))] = (goname, goname, j.group(1) if j else None, 'omitempty' in (j.group(2) if j else ''), kind)
        return out
    infos = [(p, t, arr_info(a)) for p, t, a in arrays]

    problems = []
    def go_info(m):
        want = {f['number']: f.get('goname', f['name'][0].upper() + f['name'][1:]) for f in m['fields']}
        pkg = 'k8s.io/' + split_full(m['full'])[0][len('k8s.io.'):].replace('.', '/')
        tname = pkg.rsplit('/', 1)[1] + '.' + m['name']
        cands = [i for p, t, i in infos if pkg in p and tname in t and {k: v[0] for k, v in i.items()} == want]
        if not cands:
            problems.append('no Go struct for ' + m['full']); return None
        first = cands[0]
        def sig(c):
            return {k: (v[2], v[3] if (v[4] not in ('struct', 'ptr', 'slice', 'map')) else None) for k, v in c.items()}
        for c in cands[1:]:
            if sig(c) != sig(first):
                p = 'ambiguous Go struct for %s: %r vs %r' % (m['full'], sig(first), sig(c))
                if p not in problems: problems.append(p)
        return first

    def module(pkg):
        if pkg not in modules:
            problems.append('package %s is not in PACKAGES' % pkg)
            return 'missing'
        return modules[pkg]
    def ref(full, here):
        pkg, _ = split_full(full)
        mod = module(pkg)
        return const_name(full) if mod == here else 'super::%s::%s' % (mod, const_name(full))

    RTY = {'string': 'Ty::String', 'bytes': 'Ty::Bytes', 'bool': 'Ty::Bool', 'int32': 'Ty::Int32', 'int64': 'Ty::Int64',
           'uint32': 'Ty::UInt32', 'uint64': 'Ty::UInt64', 'double': 'Ty::Double', 'float': 'Ty::Float'}
    by_mod = collections.defaultdict(list)
    counts = collections.Counter()
    consts = {}
    for full in order:
        pkg, _ = split_full(full)
        mod = module(pkg)
        key = (mod, const_name(full))
        if key in consts:
            problems.append('%s and %s are both %s::%s' % (consts[key], full, key[0], key[1]))
        consts[key] = full
        m = msgs[full]
        shape = SPECIAL.get(full, 'Struct')
        gi = go_info(m) if shape == 'Struct' and not m['map_entry'] else None
        lines = []
        for f in sorted(m['fields'], key=lambda f: f['number']):
            if f['type'] == 'message':
                tm = msgs[f['type_name']]
                if tm['map_entry']:
                    key = tm['fields'][0]
                    assert key['type'] == 'string' and key['number'] == 1, full
                    ty = 'Ty::Map(&%s)' % ref(f['type_name'], mod)
                    visit_entry = f['type_name']
                    if visit_entry not in seen:
                        seen.add(visit_entry); order.append(visit_entry)
                else:
                    ty = 'Ty::Message(&%s)' % ref(f['type_name'], mod)
            else:
                ty = RTY[f['type']]
            json = f['name']
            rule = 'Rule::Repeated' if f['repeated'] and not ty.startswith('Ty::Map') else 'Rule::Keep'
            if ty.startswith('Ty::Map'): rule = 'Rule::Keep'
            if gi is not None:
                _, goname, gjson, omitempty, kind = gi[f['number']]
                if gjson == '' :
                    rule = 'Rule::Inline'
                else:
                    # gogo names a few fields unlike their JSON (aPIGroup, uID, Webhooks); the JSON tag wins
                    if gjson.lower() != f['name'].lower(): problems.append('json name %s != proto name %s in %s' % (gjson, f['name'], full))
                    json = gjson
                    # []byte is a slice whether or not it is nullable
                    if (kind == 'ptr') != f['nullable'] and not f['repeated'] and f['type'] not in ('message', 'bytes'):
                        problems.append('nullable mismatch %s.%s kind=%s nullable=%s' % (full, f['name'], kind, f['nullable']))
                    if not f['repeated'] and f['type'] not in ('message', 'bytes') and not f['nullable'] and omitempty:
                        rule = 'Rule::OmitZero'
                    # gogo writes a non-nil []byte even when empty; omitempty leaves it out of JSON
                    if not f['repeated'] and f['type'] == 'bytes' and omitempty:
                        rule = 'Rule::OmitZero'
            counts[rule] += 1
            lines.append('        f(%d, "%s", %s, %s),' % (f['number'], json, ty, rule))
        by_mod[mod].append((full, shape, lines))

    if problems:
        sys.exit('\n'.join(problems))

    for go_pkg, mod, api_version in PACKAGES:
        items = by_mod.get(mod)
        if not items:
            continue
        with open(os.path.join(out_dir, mod + '.rs'), 'w') as fh:
            fh.write('//! The `%s` protobuf messages korral decodes (%s): field numbers, wire types and JSON names.\n'
                     % (go_pkg, api_version or 'parts of objects'))
            fh.write('//! Generated by `apiserver/tests/protobuf/tools/gen_descriptors.py` from the descriptors kubectl embeds; do not edit.\n\n')
            fh.write('use super::{Message, Rule, Shape, Ty, f};\n\n')
            for full, shape, lines in items:
                fh.write('/// `%s`.\npub static %s: Message = Message {\n    name: "%s",\n    shape: Shape::%s,\n    fields: &[\n' % (full[1:], const_name(full), full[1:], shape))
                fh.write('\n'.join(lines) + ('\n' if lines else ''))
                fh.write('    ],\n};\n\n')
    with open(os.path.join(out_dir, 'kinds.rs'), 'w') as fh:
        fh.write('//! Every top-level kind of the generated packages (a message whose field 1 is\n'
                 '//! `metadata` ObjectMeta), by apiVersion and kind; `super::top_level` registers\n'
                 '//! the ones korral serves.\n')
        fh.write('//! Generated by `apiserver/tests/protobuf/tools/gen_descriptors.py` from the descriptors kubectl embeds; do not edit.\n\n')
        fh.write('use super::{Kind, kind};\n\n')
        fh.write('/// The kinds, by package.\npub static KINDS: &[Kind] = &[\n')
        for api_version, kind_name, full in kinds:
            pkg, _ = split_full(full)
            fh.write('    kind("%s", "%s", &super::%s::%s),\n' % (api_version, kind_name, module(pkg), const_name(full)))
        fh.write('];\n')
    print(len(order), 'messages', len(kinds), 'kinds', dict(counts), {m: len(v) for m, v in by_mod.items()}, file=sys.stderr)


FIXTURES = [p for p, _, _ in PACKAGES]


def main():
    kubectl, out_dir, fixture_dir = sys.argv[1:4]
    data = open(kubectl, 'rb').read()
    files = embedded_descriptors(data)
    missing = [p for p in FIXTURES if p + '/generated.proto' not in files]
    if missing:
        sys.exit('%s does not embed %s' % (kubectl, ', '.join(missing)))
    for pkg in FIXTURES:
        raw = files[pkg + '/generated.proto']
        open(os.path.join(fixture_dir, pkg.replace('/', '_') + '.pb'), 'wb').write(raw)
    generate(parse_descriptors(files.values()), go_structs(data), out_dir)


if __name__ == '__main__':
    main()
