#!/usr/bin/env bash
# Benchmarks vinod's Redfish BMC against the sushy-tools emulator it replaces, in one run on
# this machine, and writes its section of docs/benchmarks.md.
#
#   scripts/bench-redfish.sh [SECONDS_PER_CASE]     (default 5)
#
# Each server runs in its own process on 127.0.0.1, in front of libvirt's test driver:
# vinod's test bed (examples/redfish_testbed.rs, over HTTPS and over plain HTTP) and
# sushy-emulator from the Redfish venv (plain HTTP, no auth, the test driver's own domain). The
# load generator (examples/redfish_bench.rs) runs 1 and 32 concurrent keep-alive HTTP/1.1
# clients doing GET System, then ComputerSystem.Reset (ForceOff and On alternately), for a
# fixed time each. Only loopback traffic; every wait is bounded. Everything printed about the
# servers and the load (versions, worker threads, VMs, libvirt driver, TLS, Server header) is
# what the processes report in this run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
seconds=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/vinod/target}
venv=$(scripts/redfish-venv.sh)
cargo build --release --locked -q --example redfish_testbed --example redfish_bench
bin="$CARGO_TARGET_DIR/release/examples"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '== %s\n' "$*" >&2; }

wait_file() { # file: waits (at most 30 s) until it has a line
  for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; exit 1
}

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# VMs per Vino of the test bed (it defines two Vinos); the clients use the first Vino's.
per_vino=16
sushy_uri=test:///default
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "starting vinod (HTTPS and HTTP) and sushy-emulator"
"$bin/redfish_testbed" 0 "$per_vino" > "$work/vinod-https.json" 2> "$work/vinod-https.log" & pids+=($!)
"$bin/redfish_testbed" 0 "$per_vino" --http > "$work/vinod-http.json" 2> "$work/vinod-http.log" & pids+=($!)
sport=$(free_port)
cat > "$work/emulator.conf" <<CONF
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = $sport
SUSHY_EMULATOR_LIBVIRT_URI = '$sushy_uri'
SUSHY_EMULATOR_SSL_CERT = None
SUSHY_EMULATOR_SSL_KEY = None
SUSHY_EMULATOR_AUTH_FILE = None
CONF
TMPDIR=$work "$venv/bin/sushy-emulator" --config "$work/emulator.conf" > "$work/sushy.log" 2>&1 & pids+=($!)
wait_file "$work/vinod-https.json"
wait_file "$work/vinod-http.json"
sushy_url="http://127.0.0.1:$sport"
for _ in $(seq 300); do
  curl -sf -o "$work/systems.json" "$sushy_url/redfish/v1/Systems" && break
  sleep 0.1
done
[ -s "$work/systems.json" ] || { echo "sushy-emulator did not start" >&2; cat "$work/sushy.log" >&2; exit 1; }
sushy_system=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["Members"][0]["@odata.id"])' "$work/systems.json")

field() { "$venv/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

run() { # name url path extra-args...
  local name=$1 url=$2 path=$3; shift 3
  for clients in 1 32; do
    for op in get reset; do
      local extra=()
      [ "$op" = reset ] && extra=(--reset) && path_op="$path/Actions/ComputerSystem.Reset" || path_op=$path
      say "$name $op, $clients clients"
      "$bin/redfish_bench" --url "$url" --path "$path_op" --clients "$clients" --seconds "$seconds" \
        "${extra[@]}" "$@" > "$work/r.json"
      printf '{"server":"%s","op":"%s","clients":%s,"result":%s}\n' "$name" "$op" "$clients" "$(cat "$work/r.json")" >> "$work/results.jsonl"
    done
  done
}

v=$work/vinod-https.json
run "vinod (HTTPS)" "$(field "$v" 'd["url"]')" "/redfish/v1/Systems/bench.a.worker-{i}" \
  --systems "$per_vino" --ca "$(field "$v" 'd["cert"]')" --user "$(field "$v" 'd["vinos"][0]["username"]')" \
  --password "$(field "$v" 'd["vinos"][0]["password"]')"
v=$work/vinod-http.json
run "vinod (HTTP)" "$(field "$v" 'd["url"]')" "/redfish/v1/Systems/bench.a.worker-{i}" \
  --systems "$per_vino" --user "$(field "$v" 'd["vinos"][0]["username"]')" \
  --password "$(field "$v" 'd["vinos"][0]["password"]')"
run "sushy-tools" "$sushy_url" "$sushy_system"
# The same GET while 1500 more connections (more than the BMC's table holds) sit idle on it.
v=$work/vinod-https.json
for clients in 1 32; do
  say "vinod (HTTPS) get under a flood of 1500 idle connections, $clients clients"
  (ulimit -n 8192; "$bin/redfish_bench" --url "$(field "$v" 'd["url"]')" --path "/redfish/v1/Systems/bench.a.worker-{i}" \
    --clients "$clients" --seconds "$seconds" --systems "$per_vino" --ca "$(field "$v" 'd["cert"]')" \
    --user "$(field "$v" 'd["vinos"][0]["username"]')" --password "$(field "$v" 'd["vinos"][0]["password"]')" \
    --flood 1500 > "$work/r.json")
  printf '{"server":"vinod (HTTPS, flood)","op":"get","clients":%s,"result":%s}\n' "$clients" "$(cat "$work/r.json")" >> "$work/results.jsonl"
done

say "writing docs/benchmarks.md"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
sushy_version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("sushy-tools"))')
"$venv/bin/python" - "$work/results.jsonl" "$seconds" "$load_start" "$load_end" docs/benchmarks.md \
  "$work/vinod-https.json" "$sushy_version" "$sushy_uri" "$per_vino" "$work/systems.json" <<'PY'
import builtins, functools, io, json, os, sys
out = io.StringIO()
print = functools.partial(builtins.print, file=out)
rows = [json.loads(l) for l in open(sys.argv[1])]
seconds = sys.argv[2]
load_start, load_end = sys.argv[3], sys.argv[4]
def get(server, op, clients):
    return next(r["result"] for r in rows if r["server"] == server and r["op"] == op and r["clients"] == clients)
testbed = json.load(open(sys.argv[6]))
sushy_version, sushy_uri, per_vino = sys.argv[7], sys.argv[8], int(sys.argv[9])
sushy_systems = [m["@odata.id"] for m in json.load(open(sys.argv[10]))["Members"]]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "CPU model unknown")
cores = len(os.sched_getaffinity(0))
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
kernel = open("/proc/sys/kernel/osrelease").read().strip()
def first(server, key):
    return next((r["result"][key] for r in rows if r["server"] == server and r["result"].get(key)), None)
print("## Redfish BMC: vinod vs sushy-tools\n")
print(f"- Written by `scripts/bench-redfish.sh {seconds}` (not a test; run it by hand): one run, each server in its own process on 127.0.0.1.")
print(f"- Machine: {cpu}, {cores} CPUs, {mem / 1024 / 1024:.1f} GiB memory, Linux {kernel}; servers and load generator share the CPUs.")
print(f"- Load average (1, 5, 15 min) before: {load_start}; after: {load_end}.")
print(f"- vinod: `examples/redfish_testbed.rs` (release build), {testbed['workers']} tokio worker threads, {testbed['vms']} VMs on libvirt {testbed['libvirt']};"
      f" over HTTPS ({first('vinod (HTTPS)', 'tls')}, certificate checked against the test bed's) and over plain HTTP; credentials on every request: {'yes' if first('vinod (HTTPS)', 'credentials') else 'no'}.")
print(f"- sushy-tools {sushy_version} (`sushy-emulator`, `Server: {first('sushy-tools', 'server')}`), libvirt `{sushy_uri}`: plain HTTP, credentials: {'yes' if first('sushy-tools', 'credentials') else 'no'}; it lists {len(sushy_systems)} System(s), the clients use `{sushy_systems[0]}`.")
warm = first('vinod (HTTPS)', 'warm_up_ms')
print(f"- Load: `examples/redfish_bench.rs`, N keep-alive HTTP/1.1 clients, each sending back to back for {seconds} s per case after a {warm} ms warm-up.")
print(f"- GET is `GET /redfish/v1/Systems/<id>`; Reset is `POST …/Actions/ComputerSystem.Reset`, alternating ForceOff and On. vinod's client i uses VM i mod {per_vino} (the {per_vino} VMs of one Vino); sushy-tools' clients all use the same System.\n")
print("| Operation | Clients | sushy-tools req/s | p50 ms | p99 ms | vinod HTTPS req/s | p50 ms | p99 ms | × sushy | vinod HTTP req/s | p50 ms | p99 ms | × sushy |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for op, label in (("get", "GET System"), ("reset", "Reset")):
    for c in (1, 32):
        s = get("sushy-tools", op, c)
        line = f"| {label} | {c} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} |"
        for server in ("vinod (HTTPS)", "vinod (HTTP)"):
            v = get(server, op, c)
            ratio = v["rps"] / s["rps"] if s["rps"] else float("inf")
            line += f" {v['rps']:.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {ratio:.1f} |"
        print(line)
print("\nTargets (vinod over HTTPS): throughput at least 20 times sushy-tools', and p99 at most 5 ms")
print("with 32 clients.\n")
for op, label in (("get", "GET System"), ("reset", "Reset")):
    for c in (1, 32):
        s, v = get("sushy-tools", op, c), get("vinod (HTTPS)", op, c)
        ratio = v["rps"] / s["rps"] if s["rps"] else float("inf")
        line = f"- {label}, {c} client{'s' if c > 1 else ''}: {ratio:.1f}x "
        line += "(met)" if ratio >= 20 else f"(missed: {20 / ratio:.1f} times short)"
        if c == 32:
            p99 = v["p99_ms"]
            line += f"; p99 {p99:.2f} ms " + ("(met)" if p99 <= 5 else f"(missed by {p99 - 5:.2f} ms)")
        print(line + ".")
print("\nAuthorized GET System over HTTPS with and without a flood of idle connections, same run:")
print("1500 more connections than clients, more than the BMC's table of 1024 holds, held idle and")
print("opened again whenever the BMC closes one (the oldest silent ones give way to newcomers).\n")
print("| Clients | req/s | p50 ms | p99 ms | under flood: req/s | p50 ms | p99 ms | flood connections opened |")
print("|---|---|---|---|---|---|---|---|")
for c in (1, 32):
    v, f = get("vinod (HTTPS)", "get", c), get("vinod (HTTPS, flood)", "get", c)
    print(f"| {c} | {v['rps']:.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {f['rps']:.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['flood_opened']} |")
errors = [(r["server"], r["op"], r["clients"], r["result"]["errors"]) for r in rows if r["result"]["errors"]]
print()
if errors:
    print("Failed requests: " + ", ".join(f"{s} {o} x{c}: {e}" for s, o, c, e in errors) + ".")
else:
    print("No request failed.")
print("\nWhy the targets are or are not met: see the Benchmark section of [redfish.md](redfish.md).")
# Only this script's section of docs/benchmarks.md is replaced; other sections are kept.
start, end = "<!-- redfish-bench:start -->", "<!-- redfish-bench:end -->"
section = f"{start}\n{out.getvalue()}{end}\n"
path = sys.argv[5]
doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
if start in doc and end in doc:
    doc = doc[: doc.index(start)] + section + doc[doc.index(end) + len(end) + 1 :]
else:
    doc = doc.rstrip("\n") + "\n" + section
open(path, "w").write(doc)
builtins.print(section)
PY
