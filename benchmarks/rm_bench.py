"""Reward-model throughput: items/s of `evol rm-bench` scoring per backend, on the shipped sample.

    python benchmarks/rm_bench.py [--repeat 10] [--batch-size 16] [--out runs/rm-bench-throughput]

Backends: the rule guard (`guard`), a sequence-classification checkpoint (`classifier:DIR`, a
tiny Llama with a fresh one-logit head, made here by `agents.tiny`), and generative judges over
a tiny causal LM (`judge:hf:DIR`, pointwise and pairwise, 8 new tokens per reply). The sample's
10 items (6 pairwise, 4 Best-of-N: 26 answers) are repeated `--repeat` times under fresh uids,
so every item is scored (no cache hits). The tiny models are random: their accuracies are
chance-level and printed only to show the pipeline ran; the figure is the items/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from envs.rewardjudge.data import SAMPLE_DIR, data_files
from evol.rewards.backends import load_rm
from evol.rewards.bench import run_rm_bench


def repeated_sample(root: Path, repeat: int) -> Path:
    """The shipped sample `repeat` times, uids suffixed `#k`, in the same layout."""
    for path in data_files(SAMPLE_DIR):
        records = json.loads(path.read_text(encoding="utf-8"))
        copies = []
        for k in range(repeat):
            for record in records:
                uid = "pair_uid" if "pair_uid" in record else "bon_uid"
                copies.append({**record, uid: f"{record[uid]}#{k}"})
        target = root / path.relative_to(SAMPLE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(copies), encoding="utf-8")
    return root


def tiny_models(root: Path) -> tuple[Path, Path]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from agents.tiny import build_tiny_model

    corpus = [json.dumps(json.loads(p.read_text(encoding="utf-8"))) for p in data_files(SAMPLE_DIR)]
    lm = Path(build_tiny_model(root / "lm", corpus))
    AutoModelForSequenceClassification.from_pretrained(lm, num_labels=1).save_pretrained(root / "rm")
    AutoTokenizer.from_pretrained(lm).save_pretrained(root / "rm")
    return lm, root / "rm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    logging.getLogger("evol.rewards.judge").setLevel(logging.ERROR)  # a random model's replies are unreadable
    work = Path(args.out or tempfile.mkdtemp(prefix="rm-bench-"))
    data = repeated_sample(work / "data", args.repeat)
    lm, classifier = tiny_models(work / "models")
    backends = [
        ("guard", {}),
        (f"classifier:{classifier}", {}),
        (f"judge:hf:{lm}", {"mode": "pointwise", "max_new_tokens": 8}),
        (f"judge:hf:{lm}", {"mode": "pairwise", "max_new_tokens": 8}),
    ]
    print(f"{'backend':<28} {'items':>6} {'answers':>8} {'seconds':>8} {'items/s':>8} {'overall':>8}")
    for n, (spec, options) in enumerate(backends):
        rm = load_rm(spec, **options)
        start = time.perf_counter()
        results = run_rm_bench(
            rm, data, work / f"run{n}", rm_spec=spec, batch_size=args.batch_size, progress=False
        )
        seconds = time.perf_counter() - start
        rm.close()
        name = spec.split(":", 1)[0] + (f" ({options['mode']})" if "mode" in options else "")
        answers = sum(len(r["scores"]) for r in map(json.loads, (work / f"run{n}" / "scores.jsonl").open()))
        items = results["items"]
        print(
            f"{name:<28} {items:>6} {answers:>8} {seconds:>8.2f} {items / seconds:>8.1f} {results['overall']:>8.3f}"
        )


if __name__ == "__main__":
    main()
