#!/bin/bash
# Re-captures the kubectl fixtures in ../kubectl: each command once with
# kubectl 1.32 (protobuf body, NAME.pb; 1.33 for deployment_1.33) and once with
# kubectl 1.31 (JSON body, NAME.kubectl-1.31.json), against capture.py.
# Usage: capture.sh [NAME...] (only the named fixtures; all by default).
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
wanted() { # NAME: whether to capture it
    [ ${#only[@]} -eq 0 ] && return 0
    local n
    for n in "${only[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}
only=("$@")
both() { # NAME args...
    local name=$1
    shift
    wanted "$name" || return 0
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
if wanted deployment_1.33; then
    run "$bin/kubectl.1.33" deployment_1.33 create deployment web133 --image=nginx:1.27 --replicas=2 --port=8080
    run "$bin/kubectl.1.31" deployment_1.33 create deployment web133 --image=nginx:1.27 --replicas=2 --port=8080
fi
both service create service nodeport web --tcp=80:8080
both serviceclusterip create service clusterip db --tcp=5432:5432 --tcp=9000:metrics
both serviceexternal create service externalname ext --external-name=example.com
both namespace create namespace n
both ssar auth can-i create pods
both ssrr auth can-i --list
both job create job j1 --image=busybox:1.36
both jobcommand create job j2 --image=busybox:1.36 -- sh -c 'echo hi'
both cronjob create cronjob cj1 --image=busybox:1.36 --schedule='*/5 * * * *'
both role create role r1 --verb=get --verb=list --resource=pods --resource=deployments.apps
both rolenames create role r2 --verb=get --resource=configmaps --resource-name=settings
both rolebinding create rolebinding rb1 --role=r1 --user=u --group=g --serviceaccount=default:sa1
both clusterrole create clusterrole cr1 --verb=get,list,watch --resource=nodes
both clusterroleurls create clusterrole cr2 --verb=get --non-resource-url=/healthz
both clusterrolebinding create clusterrolebinding crb1 --clusterrole=cr1 --user=u
both serviceaccount create serviceaccount sa1
both quota create quota q1 --hard=pods=10,requests.cpu=2,limits.memory=4Gi --scopes=NotTerminating
both priorityclass create priorityclass pc1 --value=1000 --description='for tests' --preemption-policy=Never
both pdb create poddisruptionbudget pdb1 --selector=app=x --min-available=1
both pdbpercent create poddisruptionbudget pdb2 --selector=app=y --max-unavailable=25%
both ingress create ingress ing1 --rule=foo.com/bar=svc1:8080
both ingresstls create ingress ing2 --class=nginx --rule='foo.com/*=svc2:http,tls=foo-cert' --default-backend=svc3:80 --annotation=a=b
# kubectl autoscale reads the deployment first
export CANNED__apis_apps_v1_namespaces_default_deployments_d1='{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d1","namespace":"default","uid":"1"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"d1"}},"template":{"metadata":{"labels":{"app":"d1"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}'
both hpa autoscale deployment d1 --max=3
both hpacpu autoscale deployment d1 --min=2 --max=5 --cpu-percent=80 --name=d1cpu
unset CANNED__apis_apps_v1_namespaces_default_deployments_d1
# kubectl certificate approve reads the request, then updates (PUT) its approval
export CANNED__apis_certificates_k8s_io_v1_certificatesigningrequests_csr1='{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":"csr1","uid":"1","resourceVersion":"5","creationTimestamp":"2024-01-02T15:04:05Z"},"spec":{"request":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIYU1JR0JBZ0VBTUI4eER6QU5CZ05WQkFNTUJtRnVaMlZzWVRFTU1Bb0dBMVVFQ2d3RFpHVjJNRmt3RXdZSApLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFek5LdXkwSWlieHV3SnlzS0svRnpzTFNVSXR5QzdCZldhbFFlCnJFdEYvUVZvdC9SeVFyTXZkSFFTWFlaU1V2YzY0UTIvT2Y3cEx4WXJBSlVoV0N1VUs2QUFNQW9HQ0NxR1NNNDkKQkFNQ0EwZ0FNRVVDSUMvY2diaU5PdVh0WVdlaG5Mcy9aUUpQYlpERXlWR1Z5NUFmOHRqUUVnWFFBaUVBbTFoagphYzFKVXhZdzkrTnRHYTRLZEpTNU1TakN2UStTdjBQYnNhUERxTmM9Ci0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo=","signerName":"kubernetes.io/kube-apiserver-client","usages":["client auth"],"username":"u","groups":["g"],"extra":{"scopes":["a","b"]}},"status":{}}'
both csrapprove certificate approve csr1
unset CANNED__apis_certificates_k8s_io_v1_certificatesigningrequests_csr1
# kubectl drain --disable-eviction cordons the node (a JSON patch, drain.json),
# then deletes its pods with DeleteOptions bodies (drain2)
export CANNED__api_v1_nodes_n1='{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","uid":"n"}}'
export CANNED__api_v1_pods='{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1","namespace":"default","uid":"p"},"spec":{"nodeName":"n1","containers":[{"name":"c","image":"busybox:1.36"}]}}]}'
export REPLY="$CANNED__api_v1_nodes_n1"
both drain drain n1 --disable-eviction --force --grace-period=7 --timeout=5s
unset CANNED__api_v1_nodes_n1 CANNED__api_v1_pods REPLY
for f in "$out"/*.pb; do
    n=$(basename "$f" .pb)
    cp "$f" "$here/../kubectl/$n.pb"
    cp "$out/$n.json" "$here/../kubectl/$n.kubectl-1.31.json"
done
rm -r "$out"
