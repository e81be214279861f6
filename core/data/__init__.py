"""The data path: documents → sentences → concept vectors → webdataset shards."""
