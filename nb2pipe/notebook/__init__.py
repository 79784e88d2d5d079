"""Reading notebooks and the cell-tag grammar."""
