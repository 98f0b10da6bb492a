"""The queue contract between the web and the workers: the Celery app and its queue and task
names (`jobs.app`), every message type (`jobs.messages`), the cost output schema
(`jobs.cost_output`), the job records in the broker's Redis (`jobs.records`) and the one place
that sends (`jobs.send`). It imports neither the worker nor torch: the web process uses it."""
