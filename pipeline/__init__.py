# Before any pipeline module imports datatrove: `datatrove.io` and datatrove's HF writer module get stand-ins for the
# huggingface_hub names they import, so a run that uses no hf:// path or HF writer does not import huggingface_hub's
# network stack (about 0.3 CPU-s per stage process; see hf_deferred).
from pipeline import hf_deferred

hf_deferred.install()
