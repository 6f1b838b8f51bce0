"""Provider tests: one contract (contract.py) that every provider module runs."""
