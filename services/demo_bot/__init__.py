"""A local, offline implementation of the bot API: an English teacher for children."""
