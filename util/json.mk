# JSON streamer and writer
