"""Evaluation sets and runs: question loading and fact matching (questions), per-question
results, run totals and run comparison (runs). Pure logic shared by the benchmarks, the CLI's
`llmops eval` and the registry's promotion gate."""
