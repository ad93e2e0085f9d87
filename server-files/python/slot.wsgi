# skiff: the WSGI script of one mod_wsgi daemon slot (installed by `skiff setup-node`).
# The slot runs whatever its slot.json names; see /usr/local/share/skiff/python/skiff_slot.py.
# Touching this file makes mod_wsgi restart this slot's processes (and no other).
import os
import sys

sys.path.insert(0, "/usr/local/share/skiff/python")
import skiff_slot  # noqa: E402

application = skiff_slot.load(os.path.dirname(os.path.abspath(__file__)))
