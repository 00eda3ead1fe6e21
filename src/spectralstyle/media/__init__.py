"""Files, images and video containers: reading, checking and atomic writing."""
