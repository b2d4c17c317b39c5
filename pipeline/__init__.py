# Before any pipeline module imports datatrove: its `datatrove.io` gets a stand-in for huggingface_hub's
# HfFileSystem, so a run that uses no hf:// path does not import huggingface_hub's network stack (see hf_deferred).
from pipeline import hf_deferred

hf_deferred.install()
