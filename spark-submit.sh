#!/usr/bin/env bash
# Run the streaming service (or batch scoring, the real-time query, the landing) through
# spark-submit.
#
#   ./spark-submit.sh [spark-submit options] [run|batch|realtime|land] [service options]
#
# Spark's own options come first (--master, --deploy-mode, --conf K=V, --executor-memory, ...);
# the first word that is not one of them starts the service's command line: `run`, `batch`,
# `realtime` or `land` followed by the options of `python -m streaming` with that command (run is
# the default when the word is an option, e.g. ./spark-submit.sh --master yarn --topic events
# ...). Examples:
#
#   ./spark-submit.sh run --bootstrap-servers 127.0.0.1:9092 --topic listings \
#       --model-uri models:/listing-price@champion --predictions-table /data/predictions \
#       --quarantine-table /data/quarantine
#   ./spark-submit.sh --master spark://10.0.0.5:7077 --conf spark.executor.cores=2 run ...
#
# The master defaults to local[*]. The pinned Kafka source and Delta jars (resolved with Maven
# into .cache/spark-jars) go with --jars, the project's code with --py-files. Executors run
# PYSPARK_PYTHON (default: this checkout's .venv/bin/python, right for local and for standalone
# workers on this machine; on YARN or Kubernetes ship an environment, e.g. with --archives, and
# point PYSPARK_PYTHON at it). SPARK_HOME selects a Spark 4.2 distribution (default: pyspark's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$ROOT/scripts/setup"
PY="$ROOT/.venv/bin/python"

submit_args=()
has_master=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        run|batch|realtime|land) break ;;
        --) shift; break ;;
        -v|--verbose|--supervise) submit_args+=("$1"); shift ;;
        --master) has_master=1; submit_args+=("$1" "${2:?--master needs a value}"); shift 2 ;;
        --master=*) has_master=1; submit_args+=("$1"); shift ;;
        --*=*) submit_args+=("$1"); shift ;;
        --conf|-c|--deploy-mode|--name|--jars|--packages|--exclude-packages|--repositories|\
        --py-files|--files|--archives|--properties-file|--driver-memory|--driver-java-options|\
        --driver-library-path|--driver-class-path|--driver-cores|--executor-memory|\
        --executor-cores|--num-executors|--total-executor-cores|--proxy-user|--principal|\
        --keytab|--queue|--class)
            submit_args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
        *) break ;;
    esac
done
command="run"
if [[ $# -gt 0 && ( "$1" == "run" || "$1" == "batch" || "$1" == "realtime" || "$1" == "land" ) ]]; then
    command="$1"; shift
fi
[[ "$has_master" == 1 ]] || submit_args+=(--master "local[*]")

# The project home (default checkpoints, MLflow store, jar cache): this checkout unless set.
export STREAMING_HOME="${STREAMING_HOME:-$ROOT}"
jars="$("$PY" -m infra.jvm_packages)"
dist="$ROOT/.local/dist"
mkdir -p "$dist"
code_zip="$dist/streaming-inference.zip"
( cd "$ROOT" && rm -f "$code_zip" && "$PY" - "$code_zip" <<'PYEOF'
import sys, zipfile, pathlib
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for package in ("infra", "streaming", "models"):
        for path in sorted(pathlib.Path(package).rglob("*.py")):
            z.write(path)
PYEOF
)

export SPARK_HOME="${SPARK_HOME:-$("$PY" -c 'import pathlib, pyspark; print(pathlib.Path(pyspark.__file__).parent)')}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$PY}"
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$PY}"

exec "$SPARK_HOME/bin/spark-submit" \
    --name "${STREAMING_APP_NAME:-streaming-inference}" \
    --jars "$jars" \
    --py-files "$code_zip" \
    "${submit_args[@]}" \
    "$ROOT/scripts/spark_main.py" "$command" "$@"
