#!/usr/bin/env bash
# The server's extra CPU for each call bridged to a human, measured on a release build.
#
# Two runs of N SIPp callers against `hotline serve` (Sphinx ASR, no no-input prompts):
#   bot:     the callers stay with the bot, silent;
#   bridged: the callers ask for a person, and hotline calls a SIPp agent phone for each
#            (agents.sip_transfer = "bridge"; the phone echoes what it hears, so RTP flows
#            both ways on both legs) and bridges them.
# In each run the server's CPU (utime + stime from /proc) is read over the same window, once
# every call is settled (bot: the greeting has played; bridged: every call is bridged). The extra
# CPU per bridged call is (bridged - bot) / N, in % of one core.
#
# usage: benches/bridged_cpu.sh [N]     (default 8; needs sipp, sox; HOTLINE_SHARED for the
#                                         caller's recording; builds target/release/hotline first)
set -euo pipefail
N=${1:-8}
WINDOW_S=20
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${HOTLINE_SHARED:-$ROOT/../shared}
BIN=$ROOT/target/release/hotline
cargo build --release --bin hotline --manifest-path "$ROOT/Cargo.toml" >/dev/null
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A PCMU pcap of the caller asking for a person, and one of silence.
sox "$SHARED/audio/telephone/speak-to-customer-support_mulaw8k.wav" -t raw -e mu-law -r 8000 -c 1 "$WORK/ask.ul"
python3 - "$WORK" <<'EOF'
import struct, sys
work = sys.argv[1]
def pcap(path, ulaw):
    out = open(path, "wb")
    out.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    seq, ts, t = 0, 0, 0.0
    for i in range(0, len(ulaw), 160):
        chunk = ulaw[i:i + 160].ljust(160, b"\xff")
        rtp = struct.pack("!BBHII", 0x80, 0, seq & 0xffff, ts & 0xffffffff, 0x1234) + chunk
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        sec = int(t); usec = int((t - sec) * 1e6)
        out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        seq += 1; ts += 160; t += 0.02
ask = open(work + "/ask.ul", "rb").read()
pcap(work + "/ask.pcap", b"\xff" * 8000 + ask + b"\xff" * 8000)
pcap(work + "/silence.pcap", b"\xff" * 16000)
EOF

run() { # $1 = bot|bridged; prints the server's CPU % of one core over the window
  local mode=$1 sip agent_port rec cfg pid
  sip=$(free_port); agent_port=$(free_port); rec="$WORK/records-$mode"
  cfg="$WORK/$mode.toml"
  cat > "$cfg" <<EOF
[asr]
engine = "sphinx"
[session]
partial_interval_ms = 0
no_input_timeout_ms = 0
[server]
records_dir = "$rec"
max_calls = $((N + 4))
[web]
enabled = false
[sip]
port = $sip
codecs = ["PCMU"]
[agents]
sip_transfer = "bridge"
EOF
  mkdir -p "$WORK/flows"
  sed "s|transfer_target = .*|transfer_target = \"sip:agent@127.0.0.1:$agent_port\"|" \
    "$ROOT/assets/flows/telecom_en.toml" > "$WORK/flows/telecom_en.toml"
  printf '[dialogue]\nflows_dir = "%s"\n' "$WORK/flows" >> "$cfg"
  # [dialogue] after [agents]: fine in TOML.
  RUST_LOG=warn "$BIN" --config "$cfg" serve 2> "$WORK/$mode.log" &
  pid=$!
  sleep 3
  if [ "$mode" = bridged ]; then
    sipp -sf "$ROOT/sip/scenarios/uas_agent.xml" -i 127.0.0.1 -p "$agent_port" -mi 127.0.0.1 \
      -mp $((agent_port + 2)) -rtp_echo -m "$N" -l "$N" -nostdin -bg >/dev/null 2>&1 || true
  fi
  local pcap="$WORK/silence.pcap"; [ "$mode" = bridged ] && pcap="$WORK/ask.pcap"
  for i in $(seq 1 "$N"); do
    sipp -sf "$ROOT/sip/scenarios/uac_wait_for_bye.xml" -i 127.0.0.1 -p "$(free_port)" \
      -mi 127.0.0.1 -mp $((20000 + i * 4)) -s support -key pcap "$pcap" -m 1 -nostdin \
      "127.0.0.1:$sip" >/dev/null 2>&1 &
    sleep 0.5
  done
  # Settle: greetings played; in the bridged run, every call bridged.
  local deadline=$((SECONDS + 60))
  if [ "$mode" = bridged ]; then
    until [ "$(grep -h '"outcome":"answered"' "$rec"/*/events.jsonl 2>/dev/null | wc -l)" -ge "$N" ]; do
      [ $SECONDS -lt $deadline ] || { echo "only some calls were bridged" >&2; break; }
      sleep 1
    done
  else
    sleep 15
  fi
  local before after
  before=$(cpu_ticks "$pid"); sleep "$WINDOW_S"; after=$(cpu_ticks "$pid")
  kill -INT "$pid" 2>/dev/null || true
  pkill -f "sipp.*127.0.0.1:$sip" 2>/dev/null || true
  pkill -f "sipp.*-p $agent_port" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "scale=3; 100 * ($after - $before) / $TICKS / $WINDOW_S" | bc
}

bot=$(run bot)
bridged=$(run bridged)
echo "calls: $N, window: ${WINDOW_S} s"
echo "server CPU with $N calls with the bot: $bot % of a core"
echo "server CPU with $N calls bridged to agents: $bridged % of a core"
echo "extra CPU per bridged call: $(echo "scale=3; ($bridged - $bot) / $N" | bc) % of a core"
