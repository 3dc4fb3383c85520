"""datatrove's MinHash deduplication as its example runs it (signatures -> buckets -> clusters -> filter,
local executor), with phi1's settings: word 5-grams, 14 bands x 8 rows. Run in the peers' own virtual
environment by `benchmarks/peers.py`; prints the removed documents' ids as one JSON list on its last line.

    peers-venv/bin/python benchmarks/helpers/datatrove_dedup.py --input DIR --work DIR --workers 2
"""

import argparse
import gzip
import json
from pathlib import Path

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.utils.hashing import HashConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(args.work)
    tasks = len(list(Path(args.input).glob("*.jsonl")))
    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))
    reader = JsonlReader(args.input, glob_pattern="*.jsonl")
    logs = str(work / "logs")
    signatures = LocalPipelineExecutor(
        pipeline=[reader, MinhashDedupSignature(output_folder=str(work / "signatures"), config=config)],
        tasks=tasks, workers=args.workers, logging_dir=f"{logs}/signatures",
    )  # fmt: skip
    buckets = LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=str(work / "signatures"), output_folder=str(work / "buckets"),
                                      config=config)],
        tasks=config.num_buckets, workers=args.workers, logging_dir=f"{logs}/buckets", depends=signatures,
    )  # fmt: skip
    clusters = LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"),
                                      config=config)],
        tasks=1, logging_dir=f"{logs}/clusters", depends=buckets,
    )  # fmt: skip
    filtered = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(args.input, glob_pattern="*.jsonl"),
            # phi1's side decides what to remove and writes nothing else: so does this side (no kept writer)
            MinhashDedupFilter(input_folder=str(work / "remove_ids"),
                               exclusion_writer=JsonlWriter(str(work / "removed"))),
        ],
        tasks=tasks, workers=args.workers, logging_dir=f"{logs}/filter", depends=clusters,
    )  # fmt: skip
    filtered.run()
    removed = []
    for path in sorted((work / "removed").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            removed += [json.loads(line)["id"] for line in fh]
    print(json.dumps(removed))


if __name__ == "__main__":
    main()
