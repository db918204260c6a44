"""Fuzzing the data readers (issue 11): seeded mutants of valid synthetic data of both families,
an oracle that tells good records from bad ones without the readers, and a campaign that runs
every mutant through the readers in strict and skip mode and classifies the outcomes.

  tfrecord.py        TFRecord framing in pure Python (CRC32C, resynchronisation after damage)
  mutants.py         `Mutant` and the byte-level mutations both families share
  yt8m_mutants.py    YouTube-8M record mutants, by kind
  ucf101_mutants.py  UCF101 record and frames-folder mutants, by kind
  oracle.py          the reference verdict: good record ids, bad records and damaged regions
  worker.py          the process that runs the readers (as a launcher would, via cli.guarded)
  campaign.py        runs mutants, classifies outcomes (allowed / forbidden), summarises

benchmarks/fuzz_records.py runs the full campaign; tests/test_fuzz.py a seeded subset.
"""
