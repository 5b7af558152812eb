"""Chart question answering with plotting code as the intermediary (ReachQA / CIT)."""
