#!/usr/bin/env bash
# The local stack in the background: demo bot, orchestrator, judge, gateway (logs and pids in
# .run/).
#   stack.sh up     start what is not running yet, wait until it answers
#   stack.sh down   stop what `up` started (and the broker, if scripts/broker.sh started it)
#   stack.sh demo   run one simulation through the gateway, print its turns live, then a small
#                   suite (examples/demo-suite.yaml) and its verdicts; print the URLs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=.run
py=.venv/bin/python
mkdir -p "$run"
gateway="http://${CONVSIM_GATEWAY_HOST:-127.0.0.1}:${CONVSIM_GATEWAY_PORT:-8000}"
# The offline demo reads better with a learner who pauses like one.
export CONVSIM_SCRIPTED_USER_DELAY_S="${CONVSIM_SCRIPTED_USER_DELAY_S:-0.8}"
export CONVSIM_LOG_FORMAT="${CONVSIM_LOG_FORMAT:-text}"  # .run/*.log are read by people
# Offline, the built-in bot target "llm" (openai_chat) talks to the demo bot's deterministic
# teacher at /v1/chat/completions: two prompts talking need no key. With OPENAI_API_KEY set
# (or CONVSIM_BOT_TARGETS given), the configuration is left as it is.
demo_bot_url="http://${CONVSIM_DEMO_BOT_HOST:-127.0.0.1}:${CONVSIM_DEMO_BOT_PORT:-9404}"
if [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${CONVSIM_BOT_TARGETS:-}" ]; then
  export CONVSIM_BOT_TARGETS="{\"llm\": {\"kind\": \"openai_chat\", \"base_url\": \"$demo_bot_url/v1\", \"model\": \"demo-teacher\"}}"
fi
two_prompts='{"bot_target": "llm", "max_turns": 3, "user_prompt": "Hello! I am ready.",
  "bot_prompt": "You are Teacher Bee, a kind English teacher. Teach the colours lesson.",
  "persona": "You are Minh, ten years old, learning English. Answer briefly."}'

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME MODULE [VAR=value ...]: the variables are that process's own.
start() {
  local name=$1 module=$2
  if alive "$name"; then echo "$name: already running (pid $(cat "$run/$name.pid"))"; return; fi
  env "${@:3}" nohup "$py" -m "$module" >"$run/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
  echo "$name: started (pid $!, log $run/$name.log)"
}

wait_http() {
  local name=$1 url=$2
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    alive "$name" || { echo "$name exited; last lines of $run/$name.log:" >&2; tail -20 "$run/$name.log" >&2; return 1; }
    sleep 0.5  # polling a process that is starting, bounded
  done
  echo "$name did not answer $url in 30 s; see $run/$name.log" >&2; return 1
}

stop() {
  local name=$1
  alive "$name" || { rm -f "$run/$name.pid"; return 0; }
  local pid; pid=$(cat "$run/$name.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$run/$name.pid"; echo "$name: stopped"
}

urls() {
  cat <<EOT

convsim is running:
  web page                 $gateway/
  API docs                 $gateway/docs        events: $gateway/asyncapi
  command line             .venv/bin/convsim run --bot-id 16 --prompt "sẵn sàng" --max-turns 3
  original call            curl -N -X POST $gateway/simulate -H 'content-type: application/json' \\
                             -d '{"bot_id": 16, "user_prompt": "sẵn sàng", "max_turns": 3}'
  two prompts talking      curl -N -X POST $gateway/simulate -H 'content-type: application/json' \\
                             -d '{"bot_target": "llm", "bot_prompt": "You are a kind English teacher.",
                                  "persona": "You are a ten-year-old learner.", "user_prompt": "Hello!"}'
  a suite, verdicts live   .venv/bin/convsim suite run examples/suite.yaml --html report.html
                           (or paste it in the page's Suites view: $gateway/#/suites; without
                           OPENAI_API_KEY the judge leaves its criteria unjudged: never a pass)
  RabbitMQ management UI   http://127.0.0.1:15672/  (guest / guest)
  logs                     $run/*.log          stop it all with: make down
EOT
}

case "${1:-}" in
  up)
    start demo_bot services.demo_bot
    start orchestrator services.orchestrator
    # The orchestrator serves its metrics on 9405; the judge, on this host too, takes the next.
    start judge services.judge CONVSIM_JUDGE_METRICS_PORT="${CONVSIM_JUDGE_METRICS_PORT:-9406}"
    start gateway services.gateway
    wait_http demo_bot "http://${CONVSIM_DEMO_BOT_HOST:-127.0.0.1}:${CONVSIM_DEMO_BOT_PORT:-9404}/healthz"
    wait_http gateway "$gateway/readyz"
    for name in orchestrator judge; do
      alive "$name" || { echo "$name exited:" >&2; tail -20 "$run/$name.log" >&2; exit 1; }
    done
    [ "${2:-}" = "--quiet" ] || urls
    ;;
  down)
    stop gateway; stop judge; stop orchestrator; stop demo_bot
    if [ -f "$run/broker.started" ]; then bash scripts/broker.sh stop && rm -f "$run/broker.started" && echo "rabbitmq: stopped"; fi
    ;;
  demo)
    echo "A lesson with demo bot 16, three turns, streamed as it happens:"
    echo
    .venv/bin/convsim run --gateway "$gateway" --bot-id 16 --prompt "sẵn sàng" --max-turns 3
    echo
    echo "Two prompts talking: bot target 'llm' (openai_chat) plays the teacher's prompt, the"
    echo "simulated user plays the learner's persona, streamed as it happens:"
    echo
    curl -sS -N -X POST "$gateway/simulate" -H 'content-type: application/json' -d "$two_prompts"
    echo
    echo
    echo "A suite: examples/demo-suite.yaml (2 scenarios, 3 runs), each run judged by the judge:"
    echo
    # Offline the judge checks the assertions and marks every criterion 'unjudged' (it never
    # invents a pass), so the suite does not pass as a whole: the exit code is shown, not fatal.
    code=0
    .venv/bin/convsim suite run --gateway "$gateway" examples/demo-suite.yaml \
      --html "$run/demo-suite.html" || code=$?
    echo
    echo "convsim suite run exited $code (0: every scenario passed); report: $run/demo-suite.html"
    urls
    ;;
  *) echo "usage: $0 up|down|demo" >&2; exit 2 ;;
esac
