"""Room photos in a folder-per-class layout (Kaggle "House Rooms": Bathroom/, Bedroom/,
Dinning/, Kitchen/, Livingroom/, plus any extra classes such as the generated Pool/, Patio/).

Class folders map to room types through `data.room_class_map` + `data.extra_room_classes`.
Files in unmapped folders and files that do not decode (or are over `data.max_image_pixels`)
are quarantined; loose files beside the class folders too.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from tqdm.auto import tqdm

from mars_core.catalogue.image_check import inspect_image
from mars_core.catalogue.quarantine import Quarantine, Reason
from mars_core.catalogue.schema import ROOMS_SCHEMA
from mars_core.config.data import ROOM_CLASS_KNOB
from mars_core.infra.errors import ImageError, ImageTooLargeError


def room_id_for(class_folder: str, file_name: str) -> str:
    """A room's stable id: its path under the rooms folder ("Bedroom/bed_012.jpg")."""
    return f"{class_folder}/{file_name}"


def room_files(root: Path) -> list[Path]:
    """Every file one level below the class folders (and loose ones), in a stable order."""
    return sorted(path for path in root.rglob("*") if path.is_file())


def scan_rooms(
    root: Path, class_map: dict[str, str], quarantine: Quarantine, *, max_pixels: int
) -> pa.Table:
    """The rooms table of a class-folder photo set; what cannot be used is quarantined."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.rooms_dir {root} does not exist; expected one folder per room class "
            f"({', '.join(sorted(class_map)) or 'see data.room_class_map'})"
        )
    rows = []
    for path in tqdm(room_files(root), desc="rooms", unit=" photos"):
        relative = path.relative_to(root)
        source = str(relative.parent) if relative.parent != Path(".") else "."
        if len(relative.parts) != 2 or relative.parts[0] not in class_map:
            detail = (
                f"{relative}: class folder {relative.parts[0]!r} is not a known room class "
                f"({', '.join(sorted(class_map))}); add it with "
                f"{ROOM_CLASS_KNOB}=[{relative.parts[0]}:<room type>]"
            )
            quarantine.add(
                source, Reason.UNKNOWN_ROOM_CLASS, record_id=str(relative), detail=detail
            )
            continue
        try:
            image = inspect_image(path, max_pixels)
        except ImageError as error:
            too_large = isinstance(error, ImageTooLargeError)
            reason = Reason.ROOM_TOO_LARGE if too_large else Reason.ROOM_UNDECODABLE
            quarantine.add(source, reason, record_id=str(relative), detail=str(error))
            continue
        folder = relative.parts[0]
        rows.append(
            {
                "room_id": room_id_for(folder, path.name),
                "room_type": class_map[folder],
                "path": str(path),
                "width": image.width,
                "height": image.height,
                "source_class": folder,
                "content_hash": image.sha256,
            }
        )
    rows.sort(key=lambda row: row["room_id"])
    return pa.Table.from_pylist(rows, schema=ROOMS_SCHEMA)
