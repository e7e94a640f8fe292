"""Score: the registered model, loaded and checked, following its alias between batches."""
