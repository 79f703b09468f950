#!/bin/bash
# Re-captures the kubectl fixtures in ../kubectl: each command once with
# kubectl 1.32 (protobuf body, NAME.pb; 1.33 for deployment_1.33) and once with
# kubectl 1.31 (JSON body, NAME.kubectl-1.31.json), against capture.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$(dirname "$(readlink -f "$(command -v kubectl)")")
out=$(mktemp -d)
head -c 16 /dev/urandom > "$out/blob.bin"
printf 'hello\n' > "$out/text.txt"

run() { # KUBECTL NAME args...
    local kubectl=$1 name=$2 port=$((18100 + RANDOM % 500))
    shift 2
    NAME=$name python3 "$here/capture.py" "$out" $port 2>/dev/null &
    local pid=$!
    sleep 0.5
    KUBECONFIG=/dev/null "$kubectl" --server http://127.0.0.1:$port "$@" >/dev/null 2>&1 || true
    kill $pid
}
both() { # NAME args...
    local name=$1
    shift
    run "$bin/kubectl.1.32" "$name" "$@"
    run "$bin/kubectl.1.31" "$name" "$@"
}
both configmap create configmap x --from-literal=a=b --from-literal=empty=
both configmapfiles create configmap files --from-file=blob="$out/blob.bin" --from-file="$out/text.txt"
both secret create secret generic s --from-literal=p=q --from-literal=bin=$'\x01\x02'
both secretdocker create secret docker-registry reg --docker-server=r.example --docker-username=u --docker-password=p
both deployment create deployment web --image=nginx --replicas=3 --port=80
both deployment0 create deployment zero --image=nginx --replicas=0
both deploymentmulti create deployment multi --image=nginx --image=busybox
run "$bin/kubectl.1.33" deployment_1.33 create deployment web133 --image=nginx:1.27 --replicas=2 --port=8080
run "$bin/kubectl.1.31" deployment_1.33 create deployment web133 --image=nginx:1.27 --replicas=2 --port=8080
both service create service nodeport web --tcp=80:8080
both serviceclusterip create service clusterip db --tcp=5432:5432 --tcp=9000:metrics
both serviceexternal create service externalname ext --external-name=example.com
both namespace create namespace n
both ssar auth can-i create pods
both ssrr auth can-i --list
for f in "$out"/*.pb; do
    n=$(basename "$f" .pb)
    cp "$f" "$here/../kubectl/$n.pb"
    cp "$out/$n.json" "$here/../kubectl/$n.kubectl-1.31.json"
done
rm -r "$out"
