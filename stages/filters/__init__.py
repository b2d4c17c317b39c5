"""The filter stage's rules, one module per rule family, as datatrove keeps one family per file in
`pipeline/filters/`: `zh` (MAP-CC's Chinese rules), `en` (datatrove's Gopher, C4 and FineWeb filters), `code`
(Codex / The Stack heuristics) and `blocklists` (URL blocklist, bad-word list). Each module holds the family's
config table and its datatrove filter; `stages/filter.py` wires them into the stage. `routing` holds the filters'
shared `run` (`BaseFilter.run` with its statistics counted once per task) and `scores` the `scores` column."""
