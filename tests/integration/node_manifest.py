# Prints the skiff manifest text (src/sync/manifest.rs) of a folder on a test node, computed
# from scratch with find-like walking, sha256 and lstat: how the tests prove that a release
# equals the local tree byte for byte (content, exec bits, symlink targets, empty folders).
# Modes are printed as found, so a wrong mode shows up as a difference.
import hashlib, os, stat, sys

def esc(s, target=False):
    s = s.replace('%', '%25').replace('\n', '%0A')
    return s.replace(' ', '%20') if target else s

root = sys.argv[1]
rows = []
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        full = os.path.join(dirpath, name)
        rel = os.path.relpath(full, root)
        st = os.lstat(full)
        mode = format(stat.S_IMODE(st.st_mode), 'o')
        if stat.S_ISLNK(st.st_mode):
            t = os.readlink(full)
            rows.append((rel.encode(), 'l %s %d %s %s' % (mode, len(t.encode()), esc(t, True), esc(rel))))
        elif stat.S_ISDIR(st.st_mode):
            rows.append((rel.encode(), 'd %s 0 - %s' % (mode, esc(rel))))
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(full, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    h.update(chunk)
            rows.append((rel.encode(), 'f %s %d %s %s' % (mode, st.st_size, h.hexdigest(), esc(rel))))
        else:
            rows.append((rel.encode(), '? %s 0 - %s' % (mode, esc(rel))))
rows.sort()
sys.stdout.write('skiff-manifest 1\n' + ''.join(r[1] + '\n' for r in rows))
