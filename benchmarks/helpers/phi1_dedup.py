"""phi1's clean deduplication alone (exact digests and MinHash band keys per shard on the workers, then
the band-by-band sort for shared buckets), as `phi1 clean` runs it, over Parquet shards of (id, text).
Run by `benchmarks/peers.py`; prints the removed documents' ids as one JSON list on its last line.

    .venv/bin/python benchmarks/helpers/phi1_dedup.py --shards DIR --work DIR --workers 2
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from phi1.clean.dedup import duplicate_of
from phi1.clean.shards import sign_jobs, sign_shard
from phi1.config import CleanConfig, ExecutorConfig
from phi1.executor import map_shards


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cfg = CleanConfig()  # phi1's defaults: 5-grams, 14 x 8, the Jaccard check
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    shards = sorted(Path(args.shards).glob("data-*.parquet"))
    jobs = sign_jobs(shards, work, cfg)
    executor = ExecutorConfig(kind="local", workers=args.workers)
    digests = np.concatenate(list(map_shards(sign_shard, jobs, executor, "deduplicating: hashes")))
    keys, sigs = [j.keys_path for j in jobs], [j.sigs_path for j in jobs]
    exact, dup_of, _ = duplicate_of(digests, keys, cfg.minhash_bands, sigs, cfg.minhash_threshold)
    ids = [i for s in shards for i in pq.read_table(s, columns=["id"]).column("id").to_pylist()]
    print(json.dumps([ids[k] for k in np.flatnonzero(exact | (dup_of >= 0)).tolist()]))


if __name__ == "__main__":
    main()
