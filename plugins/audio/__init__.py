"""Audio front end shared by speech encoders: read, downmix, resample, segment by silence."""
