#!/usr/bin/env bash
# Rebuilds data/base, the embedded dense base model of `make demo`, with moeforge's own commands:
# a byte-level BPE tokenizer trained on data/corpus, a random Llama-style model (4 layers, hidden 128,
# ~1.5M parameters), and 600 steps of full-weight pretraining on data/corpus (recipes/base-pretrain.json)
# through `moeforge pipeline`. About 15 minutes on 2 cores.
#     tools/make_base.sh [build/moeforge] [--resume]   (--resume: keep out/base-build, skip finished steps)
set -euo pipefail
mf=$(realpath "${1:-build/moeforge}")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/out/base-build
if [ "${2:-}" != "--resume" ]; then rm -rf "$work"; fi
mkdir -p "$work"
[ -d "$work/tokenizer" ] || "$mf" tokenizer train --vocab 4096 --data "$root/data/corpus" --out "$work/tokenizer"
[ -d "$work/init" ] || "$mf" init --family llama --tokenizer "$work/tokenizer" --seed 1 --out "$work/init" --config \
  '{"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}'
cat > "$work/job.json" <<JOB
{"base": "init", "data": "$root/data/corpus", "recipe": "$root/recipes/base-pretrain.json",
 "eval": {"block_size": 128, "max_blocks": 200}, "model_name": "moeforge-demo-base", "report": false}
JOB
"$mf" pipeline "$work/job.json" --out "$work/run"
rm -rf "$root/data/base.new" && cp -r "$work/run/export" "$root/data/base.new"
printf '\n## Reproduce\n\n`tools/make_base.sh build/moeforge` (tokenizer train -> init -> pipeline with recipes/base-pretrain.json).\n' >> "$root/data/base.new/README.md"
rm -rf "$root/data/base" && mv "$root/data/base.new" "$root/data/base"
du -sh "$root/data/base"
