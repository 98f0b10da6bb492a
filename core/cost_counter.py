"""The version of the cost counter whose numbers the database holds (see docs/cost.md).

A stored result records the counter version and the rule table's hash that produced it;
`paretoboard recount` re-counts every measured result whose version or hash differs. Bump the
version when the way a graph becomes per-sample numbers changes; the rule table's hash changes
by itself when a rule does.
"""

COUNTER_VERSION = "2.0"
