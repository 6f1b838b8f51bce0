"""The HTTP side of syncd: provider webhooks now; agenda pages and the API next."""
