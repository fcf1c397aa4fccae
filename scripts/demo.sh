#!/usr/bin/env bash
# The main job: train the Fashion-MNIST MLP VAE for a short budget (under 2 minutes on 2 CPU cores),
# report its validation and test -ELBO, then its importance-weighted NLL, figures and report.html,
# and last the sheet TD-2 answered in one page from this run (vaekit sheet --quick, RUN/sheet.html).
#   usage: scripts/demo.sh PYTHON RUN_DIR        (make demo: .venv/bin/python runs/demo)
#   DEMO_EPOCHS=N changes the budget (default 15 epochs).
set -euo pipefail
PY=${1:-.venv/bin/python}
RUN=${2:-runs/demo}
EPOCHS=${DEMO_EPOCHS:-15}

# A previous demo run is replaced; anything else in the way is left alone.
if [ -e "$RUN" ]; then
    if [ -e "$RUN/.vaekit-demo" ]; then
        rm -rf -- "$RUN"
    else
        echo "demo: $RUN exists and was not made by the demo; choose another: make demo RUN=runs/NAME" >&2
        exit 2
    fi
fi
mkdir -p "$RUN"
touch "$RUN/.vaekit-demo"

start=$(date +%s)
# --warmup and --patience fit the config's (5 and 15 epochs) to the demo's few epochs: a warm-up
# longer than the run, or a patience of as many epochs, would be refused as doing nothing.
"$PY" -m vaekit train --config configs/fashion-mnist-mlp.toml --epochs "$EPOCHS" --warmup 2 \
    --patience 0 --out "$RUN" --no-progress
train_seconds=$(( $(date +%s) - start ))

"$PY" - "$RUN" "$train_seconds" <<'EOF'
import json, math, sys
from pathlib import Path

from vaekit.data.binarize import eval_images
from vaekit.data.load import load_dataset
from vaekit.runs import load_run, read_metrics
from vaekit.train.loop import validate

run, seconds = Path(sys.argv[1]), int(sys.argv[2])
loaded = load_run(run)
model, config = loaded.model, loaded.config
ds = load_dataset(config.data.name, config.data.data_dir)
mode = config.resolved_binarize()
val = validate(model, eval_images(ds.val.images, mode))
test = validate(model, eval_images(ds.test.images, mode))
rows = read_metrics(run)
best = min(rows, key=lambda r: r["val_neg_elbo"])
dims = math.prod(config.model.image_shape)
summary = {"run": str(run), "epochs": len(rows), "best_epoch": best["epoch"],
           "train_seconds": seconds, "parameters": model.num_parameters(),
           "val_neg_elbo": val["neg_elbo"], "test_neg_elbo": test["neg_elbo"],
           "test_recon": test["recon"], "test_kl": test["kl"]}
(run / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
m = config.model
print()
print("=" * 72)
print(f"vaekit demo: MLP VAE {dims}-{'-'.join(map(str, m.hidden))}-{m.latent}, Bernoulli decoder, "
      f"{model.num_parameters():,} parameters")
print(f"  data        {ds.name}: {len(ds.train):,} train (binarized afresh each batch), "
      f"{len(ds.val):,} val, {len(ds.test):,} test (binarized once, seed 0)")
print(f"  training    {len(rows)} epochs in {seconds} s, best validation at epoch {best['epoch']}")
print(f"  validation  -ELBO {val['neg_elbo']:7.2f} nats/image")
print(f"  test        -ELBO {test['neg_elbo']:7.2f} nats/image  (reconstruction {test['recon']:.2f} "
      f"+ KL {test['kl']:.2f}; {test['neg_elbo'] / (dims * math.log(2)):.4f} bits/dim)")
print("  reference   published VAE test NLL 228.70 nats (Exemplar-VAE table: importance-sampled,")
print("              k = 5,000, ~2,000 GPU epochs); -ELBO is an upper bound on the NLL")
print(f"  files       {run}/: config.json model.safetensors checkpoint.* metrics.jsonl demo.json")
print("=" * 72)
EOF

# Importance-weighted -log p(x) (k = DEMO_K, default 500), every figure, and one self-contained page.
"$PY" -m vaekit report "$RUN" --k "${DEMO_K:-500}" >/dev/null
"$PY" - "$RUN" <<'EOF2'
import json, sys
from pathlib import Path

run = Path(sys.argv[1])
e = json.loads((run / "eval.json").read_text())
print(f"  test NLL    -log p(x) ~ {e['test_nll']:.2f} nats/image ({e['bits_per_dim']:.4f} bits/dim), "
      f"IWAE estimate, k = {e['k']:,}, an upper bound on average")
print(f"  latent      {e['active_units']} of {e['latent_dim']} units active")
print(f"  report      {run / 'report.html'}  (figures in {run / 'figures'})")
print(f"  full protocol (k = 5,000, about 2 minutes): vaekit eval {run}")
EOF2

# The sheet TD-2 answered in one page, beside the report, with this run for Ex.2 Q6 (read only).
# Its progress lines go to stderr; its one line on stdout says what the page holds.
"$PY" -m vaekit sheet --quick --vae-run "$RUN" --out "$RUN/sheet.html" | sed 's/^/  sheet       /'
