"""First-run seed data (`paretoboard seed`): the published ElasticBERT-base baseline and example
submissions evaluated through the real pipeline. `core.seed.run.seed` is the entry point; the
parts that need the sandbox or the queue are passed in by the caller (`worker.seed_costs`,
`jobs.send.send_score`), so nothing here imports the worker.
"""
