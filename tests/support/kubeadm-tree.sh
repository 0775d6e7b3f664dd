#!/usr/bin/env bash
# Makes a tree in kubeadm's layout (a node's /etc/kubernetes) with the openssl CLI only, following
# kubeadm's documented file names, subjects, SANs, usages and validity periods (1 year leaves, 10
# year CAs, without kubeadm's 5-minute backdate, as openssl -days makes them).
#
#   kubeadm-tree.sh DIR rsa|ecdsa                       the first control-plane node, cp-1
#   kubeadm-tree.sh DIR rsa|ecdsa --join FIRST NAME IP  a second control-plane node joining FIRST:
#                                                       FIRST's CAs and sa key, its own apiserver,
#                                                       etcd server and peer, and kubelet.conf
set -euo pipefail

dir=$1
alg=$2
mode=${3:-}
node=cp-1
ip=10.0.0.11
server=https://10.0.0.10:6443
umask 022

case $alg in
rsa | ecdsa) ;;
*) echo "unknown algorithm $alg (rsa or ecdsa)" >&2 && exit 2 ;;
esac

mkdir -p "$dir/pki/etcd"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A private key as kubeadm writes it: PKCS#1 (RSA PRIVATE KEY) or SEC1 (EC PRIVATE KEY), 0600.
genkey() {
    (
        umask 077
        case $alg in
        rsa) openssl genrsa -traditional -out "$1" 2048 2>/dev/null ;;
        ecdsa) openssl ecparam -name prime256v1 -genkey -noout -out "$1" ;;
        esac
    )
}

# A self-signed CA: key usage DS, KE, keyCertSign, CA:TRUE without a path length, SAN = its CN.
ca() {
    local base=$1 cn=$2
    genkey "$dir/pki/$base.key"
    cat >"$tmp/ca.cnf" <<CNF
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = $cn
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign
subjectKeyIdentifier = hash
subjectAltName = DNS:$cn
CNF
    openssl req -x509 -new -config "$tmp/ca.cnf" -key "$dir/pki/$base.key" -sha256 -days 3650 \
        -set_serial "0x$(openssl rand -hex 8 | sed 's/^./1/')" -out "$dir/pki/$base.crt"
}

# A leaf signed by CA (a base name under pki/): key usage DS, KE; the given extended key usage;
# subject "/O=.../CN=..."; SANs (possibly empty).
leaf() {
    local out=$1 ca=$2 subj=$3 eku=$4 sans=${5:-}
    genkey "$out.key"
    {
        echo "[ext]"
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyEncipherment"
        echo "extendedKeyUsage = $eku"
        echo "authorityKeyIdentifier = keyid"
        [ -n "$sans" ] && echo "subjectAltName = $sans"
    } >"$tmp/leaf.cnf"
    openssl req -new -key "$out.key" -subj "$subj" -out "$tmp/leaf.csr"
    openssl x509 -req -in "$tmp/leaf.csr" -CA "$dir/pki/$ca.crt" -CAkey "$dir/pki/$ca.key" \
        -set_serial "0x$(openssl rand -hex 8 | sed 's/^./1/')" -sha256 -days 365 \
        -extfile "$tmp/leaf.cnf" -extensions ext -out "$out.crt" 2>/dev/null
}

# A kubeconfig in kubeadm's layout (clientcmd's sorted keys) with the client's certificate and
# key embedded, 0600.
kubeconfig() {
    local file=$1 user=$2 url=$3 client=$4
    (
        umask 077
        cat >"$dir/$file" <<YAML
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 "$dir/pki/ca.crt")
    server: $url
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $user
  name: $user@kubernetes
current-context: $user@kubernetes
kind: Config
preferences: {}
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$client.crt")
    client-key-data: $(base64 -w0 "$client.key")
YAML
    )
}

# What only a control-plane node itself has: its apiserver, etcd server and peer, kubelet.conf.
node_files() {
    local kube="DNS:$node, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc"
    kube="$kube, DNS:kubernetes.default.svc.cluster.local, IP:10.96.0.1, IP:$ip"
    leaf "$dir/pki/apiserver" ca "/CN=kube-apiserver" serverAuth "$kube"
    local etcd="DNS:$node, DNS:localhost, IP:$ip, IP:127.0.0.1, IP:::1"
    leaf "$dir/pki/etcd/server" etcd/ca "/CN=$node" "serverAuth, clientAuth" "$etcd"
    leaf "$dir/pki/etcd/peer" etcd/ca "/CN=$node" "serverAuth, clientAuth" "$etcd"
    leaf "$tmp/kubelet" ca "/O=system:nodes/CN=system:node:$node" clientAuth
    kubeconfig kubelet.conf "system:node:$node" "$server" "$tmp/kubelet"
}

if [ "$mode" = --join ]; then
    first=$4
    node=$5
    ip=$6
    for f in ca front-proxy-ca etcd/ca sa; do
        for ext in crt key pub; do
            if [ -e "$first/pki/$f.$ext" ]; then cp -p "$first/pki/$f.$ext" "$dir/pki/$f.$ext"; fi
        done
    done
    node_files
    exit 0
fi

ca ca kubernetes
ca front-proxy-ca front-proxy-ca
ca etcd/ca etcd-ca
node_files
leaf "$dir/pki/apiserver-kubelet-client" ca "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" clientAuth
leaf "$dir/pki/front-proxy-client" front-proxy-ca "/CN=front-proxy-client" clientAuth
leaf "$dir/pki/etcd/healthcheck-client" etcd/ca "/CN=kube-etcd-healthcheck-client" clientAuth
leaf "$dir/pki/apiserver-etcd-client" etcd/ca "/CN=kube-apiserver-etcd-client" clientAuth
genkey "$dir/pki/sa.key"
openssl pkey -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub"
leaf "$tmp/admin" ca "/O=kubeadm:cluster-admins/CN=kubernetes-admin" clientAuth
kubeconfig admin.conf kubernetes-admin "$server" "$tmp/admin"
leaf "$tmp/super-admin" ca "/O=system:masters/CN=kubernetes-super-admin" clientAuth
kubeconfig super-admin.conf kubernetes-super-admin "$server" "$tmp/super-admin"
leaf "$tmp/cm" ca "/CN=system:kube-controller-manager" clientAuth
kubeconfig controller-manager.conf system:kube-controller-manager "https://$ip:6443" "$tmp/cm"
leaf "$tmp/sched" ca "/CN=system:kube-scheduler" clientAuth
kubeconfig scheduler.conf system:kube-scheduler "https://$ip:6443" "$tmp/sched"
