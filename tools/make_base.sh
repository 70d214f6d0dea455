#!/usr/bin/env bash
# Rebuilds data/base, the embedded dense base model of `make demo`, with moeforge's own commands:
# a byte-level BPE tokenizer trained on data/corpus, a random Llama-style model (4 layers, hidden 128,
# ~1.5M parameters), and 600 steps of full-weight pretraining on data/corpus (recipes/base-pretrain.json)
# through `moeforge pipeline`. About 15 minutes on 2 cores.
#     tools/make_base.sh [build/moeforge]
set -euo pipefail
mf=$(realpath "${1:-build/moeforge}")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/out/base-build
rm -rf "$work" && mkdir -p "$work"
"$mf" tokenizer train --vocab 4096 --data "$root/data/corpus" --out "$work/tokenizer"
"$mf" init --family llama --tokenizer "$work/tokenizer" --seed 1 --out "$work/init" --config \
  '{"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}'
cat > "$work/job.json" <<JOB
{"base": "init", "data": "$root/data/corpus", "recipe": "$root/recipes/base-pretrain.json",
 "eval": {"block_size": 128, "max_blocks": 200}, "model_name": "moeforge-demo-base", "report": false}
JOB
"$mf" pipeline "$work/job.json" --out "$work/run"
rm -rf "$root/data/base.new" && cp -r "$work/run/export" "$root/data/base.new"
rm -rf "$root/data/base" && mv "$root/data/base.new" "$root/data/base"
du -sh "$root/data/base"
