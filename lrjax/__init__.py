"""lrjax."""
