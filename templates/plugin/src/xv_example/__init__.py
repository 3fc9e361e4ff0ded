"""An example Xenovectra device plugin."""
