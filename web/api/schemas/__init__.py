"""Request and response models of the API, one module per domain: `tasks`, `leaderboard`,
`users` (accounts, sessions, tokens). A submission's models are the domain's own
(`core.submissions.schemas`: the core's queries return them); the error body is `web.errors`'.
"""
