#!/usr/bin/env bash
# Start/stop a throwaway Kubernetes control plane (etcd + kube-apiserver) on
# loopback for tests, using the binaries from scripts/k8s-test-binaries.sh.
#
#   scripts/k8s-test-env.sh start DIR   # prints DIR/kubeconfig as the last stdout line
#   scripts/k8s-test-env.sh stop DIR
#   scripts/k8s-test-env.sh stop-apiserver DIR    # etcd keeps running
#   scripts/k8s-test-env.sh start-apiserver DIR   # same port, flags and data; waits for /readyz
#   scripts/k8s-test-env.sh start-gc DIR          # kube-controller-manager running only the
#                                                 # garbage collector, as the admin
#
# start:
#   - picks free random ports on 127.0.0.1 (etcd client, etcd peer, apiserver)
#   - etcd with its data in DIR/etcd
#   - kube-apiserver with static token authentication (DIR/tokens.csv),
#     --authorization-mode=RBAC, a serving cert from a CA generated with
#     openssl (DIR/pki/ca.crt), and a service-account signing key generated
#     with openssl (DIR/pki/sa.key, DIR/pki/sa.pub)
#   - writes DIR/kubeconfig (admin, group system:masters),
#     DIR/kubeconfig-vinod-node-a, DIR/kubeconfig-vinod-node-b (plain users in
#     group vinod:nodes and system:authenticated, no permissions unless a test
#     grants them), DIR/token-<user> and DIR/env (shell-sourceable variables)
#   - waits (at most VINOD_K8S_START_TIMEOUT seconds, default and cap 90) for
#     /readyz, else stops everything, prints the log tails and fails
# stop: SIGTERM to kube-controller-manager (if started), kube-apiserver, then etcd (via DIR/*.pid), waits for them to
#   exit (bounded), SIGKILL if needed. Idempotent. DIR itself is left in place.
#
# Environment:
#   VINOD_K8S_BIN  directory with kube-apiserver, etcd, kubectl, kube-controller-manager; default:
#                  the output of scripts/k8s-test-binaries.sh (builds on first use)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[k8s-test-env] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() { echo "usage: $0 start|stop|stop-apiserver|start-apiserver|start-gc DIR" >&2; exit 2; }

[[ $# -eq 2 ]] || usage
CMD="$1"
DIR="$2"

# ---- helpers -----------------------------------------------------------------

# Is the pid alive and running the named binary (guards against pid reuse)?
pid_is() {
  local pid="$1" name="$2" exe
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  kill -0 "${pid}" 2>/dev/null || return 1
  exe="$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null || true)"
  [[ "${exe}" == *"/${name} "* || "${exe}" == "${name} "* ]]
}

# Whether pid is still alive. Right after `cmd &` the child is a subshell that has not exec'd
# the server yet, so its command line is not the server's: waits started that way check only
# that the process lives, and pid_is (the name check) guards the kills.
alive() {
  [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null
}

stop_one() {
  local name="$1" pidfile="${DIR}/$1.pid" pid i
  [[ -f "${pidfile}" ]] || return 0
  pid="$(cat "${pidfile}" 2>/dev/null || true)"
  if pid_is "${pid}" "${name}"; then
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do          # up to 30 s
      pid_is "${pid}" "${name}" || break
      sleep 0.1
    done
    if pid_is "${pid}" "${name}"; then
      log "${name} (pid ${pid}) did not exit after SIGTERM; sending SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do        # up to 10 s
        pid_is "${pid}" "${name}" || break
        sleep 0.1
      done
    fi
    pid_is "${pid}" "${name}" && die "${name} (pid ${pid}) is still running"
    log "stopped ${name} (pid ${pid})"
  fi
  rm -f "${pidfile}"
}

stop_all() {
  stop_one kube-controller-manager
  stop_one kube-apiserver
  stop_one etcd
}

# All local ports currently in use (any TCP state), from /proc, in decimal.
used_ports() {
  local f
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r "${f}" ]] || continue
    awk 'NR > 1 { split($2, a, ":"); print a[2] }' "${f}"
  done | while read -r hex; do echo $((16#${hex})); done | sort -u
}

# Pick N distinct free ports in 20000-32767 (below the usual ephemeral range).
pick_ports() {
  local n="$1" used picked=() p tries=0
  used=" $(used_ports | tr '\n' ' ') "
  while [[ ${#picked[@]} -lt ${n} ]]; do
    ((++tries <= 1000)) || die "could not find ${n} free ports"
    p=$((20000 + RANDOM % 12768))
    [[ "${used}" == *" ${p} "* ]] && continue
    used+="${p} "
    picked+=("${p}")
  done
  echo "${picked[@]}"
}

# Wait until 127.0.0.1:port accepts connections, or the pid dies, or deadline.
wait_port() {
  local port="$1" pid="$2" deadline="$3"
  while ((SECONDS < deadline)); do
    alive "${pid}" || return 1
    if (exec 2>/dev/null; : <"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

write_kubeconfig() {
  local file="$1" user="$2" token="$3"
  umask 077
  cat >"${file}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vinod-test
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority: ${DIR}/pki/ca.crt
users:
- name: ${user}
  user:
    token: ${token}
contexts:
- name: ${user}@vinod-test
  context:
    cluster: vinod-test
    user: ${user}
    namespace: default
current-context: ${user}@vinod-test
EOF
}

fail_start() {
  log "ERROR: $*"
  for f in etcd kube-apiserver; do
    if [[ -f "${DIR}/${f}.log" ]]; then
      log "---- last lines of ${DIR}/${f}.log ----"
      tail -n 30 "${DIR}/${f}.log" >&2 || true
    fi
  done
  stop_all || true
  exit 1
}

# Start kube-apiserver in the background from DIR/kube-apiserver.cmd.
launch_apiserver() {
  local cmd
  cmd="$(cat "${DIR}/kube-apiserver.cmd")"
  eval "exec ${cmd}" </dev/null >>"${DIR}/kube-apiserver.log" 2>&1 &
  echo "$!" >"${DIR}/kube-apiserver.pid"
}

# Wait until /readyz says ok (or a process dies, or the deadline passes).
wait_ready() {
  local bin="$1" api_pid="$2" etcd_pid="$3" deadline="$4" timeout="$5" out=""
  while true; do
    alive "${api_pid}" || fail_start "kube-apiserver exited"
    alive "${etcd_pid}" || fail_start "etcd exited"
    out="$("${bin}/kubectl" --kubeconfig="${DIR}/kubeconfig" get --raw=/readyz \
      --request-timeout=2s 2>/dev/null || true)"
    [[ "${out}" == "ok" ]] && break
    ((SECONDS < deadline)) || fail_start "kube-apiserver not ready within ${timeout} s"
    sleep 0.5
  done
}

# ---- commands ----------------------------------------------------------------

cmd_stop_apiserver() {
  DIR="$(cd "${DIR}" && pwd)"
  stop_one kube-apiserver
}

cmd_start_apiserver() {
  DIR="$(cd "${DIR}" && pwd)"
  [[ -f "${DIR}/kube-apiserver.cmd" ]] || die "${DIR} was not made by start"
  if [[ -f "${DIR}/kube-apiserver.pid" ]] && pid_is "$(cat "${DIR}/kube-apiserver.pid")" kube-apiserver; then
    die "kube-apiserver already running for ${DIR}"
  fi
  local etcd_pid bin
  etcd_pid="$(cat "${DIR}/etcd.pid")"
  bin="$(sed -n "s/^export VINOD_K8S_BIN='\(.*\)'$/\1/p" "${DIR}/env")"
  launch_apiserver
  wait_ready "${bin}" "$(cat "${DIR}/kube-apiserver.pid")" "${etcd_pid}" $((SECONDS + 90)) 90
  log "kube-apiserver is back"
}

# The garbage collector (the only controller started): deletes objects whose owners are gone.
cmd_start_gc() {
  DIR="$(cd "${DIR}" && pwd)"
  [[ -f "${DIR}/env" ]] || die "${DIR} was not made by start"
  local bin
  bin="$(sed -n "s/^export VINOD_K8S_BIN='\(.*\)'$/\1/p" "${DIR}/env")"
  [[ -x "${bin}/kube-controller-manager" ]] \
    || die "${bin}/kube-controller-manager not found (run scripts/k8s-test-binaries.sh)"
  if [[ -f "${DIR}/kube-controller-manager.pid" ]] \
    && pid_is "$(cat "${DIR}/kube-controller-manager.pid")" kube-controller-manager; then
    die "kube-controller-manager already running for ${DIR}"
  fi
  "${bin}/kube-controller-manager" \
    --kubeconfig="${DIR}/kubeconfig" \
    --controllers=garbagecollector \
    --leader-elect=false \
    --secure-port=0 \
    --use-service-account-credentials=false \
    </dev/null >>"${DIR}/kube-controller-manager.log" 2>&1 &
  echo "$!" >"${DIR}/kube-controller-manager.pid"
  sleep 1
  alive "$(cat "${DIR}/kube-controller-manager.pid")" \
    || { tail -n 30 "${DIR}/kube-controller-manager.log" >&2; die "kube-controller-manager exited"; }
  log "garbage collector running (kube-controller-manager pid $(cat "${DIR}/kube-controller-manager.pid"))"
}

cmd_stop() {
  [[ -d "${DIR}" ]] || { log "nothing to stop: ${DIR} does not exist"; return 0; }
  DIR="$(cd "${DIR}" && pwd)"
  stop_all
}

cmd_start() {
  command -v openssl >/dev/null 2>&1 || die "openssl is required"
  mkdir -p "${DIR}"
  DIR="$(cd "${DIR}" && pwd)"
  for name in etcd kube-apiserver; do
    if [[ -f "${DIR}/${name}.pid" ]] && pid_is "$(cat "${DIR}/${name}.pid")" "${name}"; then
      die "${name} already running for ${DIR} (pid $(cat "${DIR}/${name}.pid")); run stop first"
    fi
  done

  local bin="${VINOD_K8S_BIN:-}"
  if [[ -z "${bin}" ]]; then
    bin="$("${SCRIPT_DIR}/k8s-test-binaries.sh" | tail -n 1)"
  fi
  for b in etcd kube-apiserver kubectl; do
    [[ -x "${bin}/${b}" ]] || die "${bin}/${b} not found (run scripts/k8s-test-binaries.sh)"
  done

  local timeout="${VINOD_K8S_START_TIMEOUT:-90}"
  ((timeout > 90)) && timeout=90
  local deadline=$((SECONDS + timeout))

  # -- credentials & certs
  local pki="${DIR}/pki"
  mkdir -p "${pki}" "${DIR}/etcd"
  chmod 700 "${DIR}/etcd"
  (
    cd "${pki}"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
      -keyout ca.key -out ca.crt -subj "/CN=vinod-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    cat >apiserver.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
EOF
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 30 -sha256 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f apiserver.csr apiserver.ext ca.srl
  ) || die "openssl failed"

  local admin_token node_a_token node_b_token
  admin_token="$(openssl rand -hex 24)"
  node_a_token="$(openssl rand -hex 24)"
  node_b_token="$(openssl rand -hex 24)"
  (
    umask 077
    cat >"${DIR}/tokens.csv" <<EOF
${admin_token},admin,vinod-test-admin,"system:masters"
${node_a_token},vinod-node-a,vinod-node-a,"vinod:nodes"
${node_b_token},vinod-node-b,vinod-node-b,"vinod:nodes"
EOF
    printf '%s\n' "${admin_token}" >"${DIR}/token-admin"
    printf '%s\n' "${node_a_token}" >"${DIR}/token-vinod-node-a"
    printf '%s\n' "${node_b_token}" >"${DIR}/token-vinod-node-b"
  )

  # -- ports
  read -r ETCD_PORT ETCD_PEER_PORT API_PORT <<<"$(pick_ports 3)"
  [[ -n "${API_PORT:-}" ]] || die "could not pick free ports"

  # -- etcd
  : >"${DIR}/etcd.log"
  "${bin}/etcd" \
    --name=vinod-test \
    --data-dir="${DIR}/etcd" \
    --listen-client-urls="http://127.0.0.1:${ETCD_PORT}" \
    --advertise-client-urls="http://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster="vinod-test=http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster-state=new \
    --unsafe-no-fsync=true \
    --log-level=warn \
    </dev/null >>"${DIR}/etcd.log" 2>&1 &
  local etcd_pid=$!
  echo "${etcd_pid}" >"${DIR}/etcd.pid"
  wait_port "${ETCD_PORT}" "${etcd_pid}" "${deadline}" \
    || fail_start "etcd did not start listening on 127.0.0.1:${ETCD_PORT}"

  # -- kube-apiserver (its command line is kept so start-apiserver can bring it back)
  local args=(
    "${bin}/kube-apiserver"
    --bind-address=127.0.0.1
    --advertise-address=127.0.0.1
    --endpoint-reconciler-type=none
    --secure-port="${API_PORT}"
    --etcd-servers="http://127.0.0.1:${ETCD_PORT}"
    --cert-dir="${pki}"
    --tls-cert-file="${pki}/apiserver.crt"
    --tls-private-key-file="${pki}/apiserver.key"
    --client-ca-file="${pki}/ca.crt"
    --token-auth-file="${DIR}/tokens.csv"
    --authorization-mode=RBAC
    --anonymous-auth=false
    --service-account-issuer="https://127.0.0.1:${API_PORT}"
    --service-account-key-file="${pki}/sa.pub"
    --service-account-signing-key-file="${pki}/sa.key"
    --service-cluster-ip-range=10.0.0.0/24
    --disable-admission-plugins=ServiceAccount
    --allow-privileged=true
  )
  printf '%q ' "${args[@]}" >"${DIR}/kube-apiserver.cmd"
  : >"${DIR}/kube-apiserver.log"
  launch_apiserver
  local api_pid
  api_pid="$(cat "${DIR}/kube-apiserver.pid")"

  write_kubeconfig "${DIR}/kubeconfig" admin "${admin_token}"
  write_kubeconfig "${DIR}/kubeconfig-vinod-node-a" vinod-node-a "${node_a_token}"
  write_kubeconfig "${DIR}/kubeconfig-vinod-node-b" vinod-node-b "${node_b_token}"
  cat >"${DIR}/env" <<EOF
# generated by scripts/k8s-test-env.sh; source it
export VINOD_K8S_BIN='${bin}'
export KUBECONFIG='${DIR}/kubeconfig'
export VINOD_K8S_APISERVER='https://127.0.0.1:${API_PORT}'
export VINOD_K8S_CA='${pki}/ca.crt'
export VINOD_K8S_ETCD='http://127.0.0.1:${ETCD_PORT}'
EOF

  wait_ready "${bin}" "${api_pid}" "${etcd_pid}" "${deadline}" "${timeout}"
  log "ready: https://127.0.0.1:${API_PORT} (etcd 127.0.0.1:${ETCD_PORT}), data in ${DIR}"
  echo "${DIR}/kubeconfig"
}

case "${CMD}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  start-gc) cmd_start_gc ;;
  *) usage ;;
esac
