#!/usr/bin/env python3
"""Rebuild the bundled real-image sample from free packages in the Debian archive.

Usage (needs network access to the Debian archive, ``apt-get`` and ``dpkg-deb``)::

    python scenegan/sample/rebuild.py --out scenegan/sample

What it does, in order:

1. refuses any package on the deny-list (those are held out for evaluation);
2. downloads the exact package versions listed in ``PACKAGES`` with ``apt-get download``,
   using a private apt configuration (its own sources list and lists directory under a
   temporary folder, so the system apt state is not touched; ``--debs DIR`` reuses .deb
   files that are already there);
3. unpacks each package with ``dpkg-deb -x``;
4. for every entry in ``PHOTOS`` and ``PAINTINGS`` (an explicit, reviewed list, not a glob):
   flattens to RGB, centre-crops to at most 2:1 if the picture is wider, downscales with
   Lanczos so that the long side is at most 384 px, and writes a baseline JPEG (quality 88,
   no EXIF, no ICC profile);
5. looks the licence of each file up in the package's ``/usr/share/doc/<pkg>/copyright``
   (DEP-5: the last matching ``Files:`` stanza wins) or uses the recorded override for
   packages whose copyright file is not machine-readable, and writes ``SOURCES.tsv``.

The output is deterministic: the same packages and the same Pillow version give the same
bytes.  Only python3, Pillow, apt-get and dpkg-deb are needed.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

LONG_SIDE = 384
MAX_ASPECT = 2.0
JPEG_QUALITY = 88

# Held out for evaluation: never take anything from these.
DENY_PACKAGES = (
    "gcompris",
    "gcompris-qt",
    "gcompris-qt-data",
    "gcompris-data",
    "scratch",
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "palapeli-data",
)
DENY_PATTERNS = ("lomiri-wallpapers*", "wesnoth*", "gcompris*")

ARCHIVE = "http://deb.debian.org/debian"


def _words(text: str) -> list[str]:
    """The whitespace-separated words of ``text`` (the lists below are written as text)."""
    return text.split()


# package -> (version, suite, prefix of the installed path that maps to the source tree
#             paths used in the DEP-5 copyright file, licence override or None)
PACKAGES = {
    "endless-sky-data": ("0.9.8-1.2", "bookworm", "usr/share/games/endless-sky/", None),
    "widelands-data": ("2:1.1-3", "bookworm", "usr/share/games/widelands/", None),
    "budgie-backgrounds": ("3.0-1", "trixie", "usr/share/", None),
    "lxqt-themes": ("1.2.0-1", "bookworm", "usr/share/lxqt/", None),
    # debian/copyright of warmux-data is not DEP-5; it puts the whole package under GPL-2+.
    "warmux-data": (
        "1:11.04.1+repack2-4",
        "bookworm",
        "usr/share/games/warmux/",
        ("GPL-2+", "WarMUX team and contributors (wormux.org)"),
    ),
}

ES_LAND = "usr/share/games/endless-sky/images/land/"
WL_LOAD = "usr/share/games/widelands/data/templates/default/loadscreens/gameloading/"
BUDGIE = "usr/share/backgrounds/budgie/"
LXQT = "usr/share/lxqt/wallpapers/"
WARMUX = "usr/share/games/warmux/map/"

# Endless Sky "landing" pictures: photographs (720x360).  Left out on purpose: earthrise*,
# industrial*, loc*, nasa*, space*, station* (space, rockets, interiors), and, to keep the
# sample at about 240 photos, these near-repeats of the same kind of view:
# bwerner3 bwerner4 bwerner6 canyon01 canyon03 canyon05 city2 city3 city7 desert5 desert6 dmottl3
# dmottl4 dune2 dune4 fields3 fields4 fields8 fog5 fog6 hills4 lava4 lava6 mountain3 mountain5
# mountain9 myrabella5 myrabella7 sea4 sea6 sea9 sky5 sky6 snow5 snow9 valley5 valley7 valley9
# water3 water5 water7.
ENDLESS_SKY = _words("""
badlands0 badlands1 badlands2 badlands3 badlands4 badlands5 badlands6 badlands7 badlands8
badlands9-harro beach0 beach1 beach10-sfiera beach11-harro beach12-harro beach2 beach3 beach4
beach5 beach6 beach7-sfiera beach8-sfiera beach9-sfiera bwerner0 bwerner1 bwerner2 bwerner5
bwerner7 bwerner8 canyon0 canyon02 canyon04 canyon1 canyon10-harro canyon2 canyon3 canyon4
canyon5 canyon6 canyon7 canyon8 canyon9 city0 city1 city10 city11 city12 city13-sfiera
city14-sfiera city15-sfiera city16-sfiera city17-sfiera city18-iridium city4 city5 city6 city8
city9 desert0 desert1 desert10-harro desert2 desert3 desert4 desert7 desert8-sfiera
desert9-sfiera dmottl0 dmottl1 dmottl2 dmottl5 dune0 dune1 dune3 dune5 dune6-harro fields0
fields1 fields10-sfiera fields11-sfiera fields12-sfiera fields13-sfiera fields2 fields5 fields6
fields7 fields9 fog0 fog1 fog2 fog3 fog4 fog7 forest0 forest1 forest2 forest3 forest4 forest5
hills0 hills1 hills2 hills3 hills5-sfiera hills6-sfiera hills7-harro lava0 lava1 lava2 lava3
lava5 lava7-sfiera mfield0 mfield1 mfield2 mfield3 mfield4 mfield5 mountain0 mountain1
mountain10-sfiera mountain11-sfiera mountain12-sfiera mountain13-sfiera mountain14-sfiera
mountain15-sfiera mountain16-striker mountain17-harro mountain18-harro mountain19-harro
mountain2 mountain20-harro mountain21-harro mountain22-spfld mountain23-spfld mountain24-spfld
mountain25-spfld mountain4 mountain6 mountain7 mountain8 myrabella0 myrabella1 myrabella2
myrabella3 myrabella4 myrabella6 myrabella8 sea0 sea1 sea10-sfiera sea11-sfiera sea12-sfiera
sea13-sfiera sea14-sfiera sea15-harro sea16-harro sea17-harro sea2 sea3 sea5 sea7 sea8 sky0 sky1
sky2 sky3 sky4 sky7 sky8 sky9 snow0 snow1 snow10-sfiera snow10 snow11-sfiera snow2 snow3 snow4
snow6 snow7 snow8 valley0 valley1 valley10-sfiera valley11-harro valley12-harro valley13-harro
valley14-harro valley15-harro valley2 valley3 valley4 valley6 valley8 water0 water1
water10-harro water11-harro water2 water4 water6 water8 water9
""")

# Widelands loading screens: photographs of Austrian mountains and the North Sea coast.
WIDELANDS = _words("""
desert/coast desert/raps desert/sunsetlambs summer/austernfischer summer/autumnmeadow
summer/ennskraxn summer/ennskraxnmeadow summer/haselstein summer/jaegersee summer/mountainview
wasteland/mountainmeadow wasteland/rainbow wasteland/tappenkar wasteland/tappenkarsee
wasteland/tides wasteland/watt winter/autumn winter/autumnleaves winter/jaegersee winter/kleinarl
winter/snowmountain
""")

# Budgie backgrounds (CC0): only the outdoor photographs (not the abstract, close-up, animal,
# architecture-detail or illustrated ones).
BUDGIE_PHOTOS = _words("""
beacon-street-sunset extreme-desert-hike lake-sherburne roman-colosseum singaporean-cityscape
tea-gardens
""")

# LXQt wallpapers: only the landscape / sky photographs.
LXQT_PHOTOS = ("Valendas.png", "after-the-rain.jpg", "beam.png", "cloud.png", "fog.jpg")

# WarMUX map backdrops and map previews: one hand-drawn cartoon landscape style.  Left out:
# abstract, indoor, underwater and space maps, plain gradient or moon-only skies, and
# randomisland/preview.jpg (it carries the text "Experimental use only").
WARMUX_PAINTINGS = _words("""
arbre/fond.jpg arbre/preview.jpg bankiz/preview.jpg bankiz/sky.jpg banquise/background.jpg
banquise/preview.jpg battlenight/battlenight-all.jpg battlenight/battlenight-bg.jpg
birds/one_layer_sky.jpg birds/preview.jpg champignon/preview.jpg country/preview.jpg
country/sky.jpg easterisland/preview.jpg farm/one_layer_sky.jpg farm/preview.jpg
frog/preview.jpg frog/sky.jpg funky_island/island_bg.jpg funky_island/preview.jpg
greehills/preview.jpg halloween/preview.jpg halloween/sky.jpg icebergs/preview.jpg
island/preview.jpg island/sky.jpg junglemountain/drseuss.jpg junglemountain/preview.jpg
monkeybubble/one_layer_sky.jpg monkeybubble/sky_layer-0.jpg montagnes/preview.jpg
montagnes/sky.jpg moon-4m/sky.jpg ninja/one_layer_sky.jpg ninja/preview.jpg pirates/islands.jpg
pirates/preview.jpg prehistorik/fond.jpg prehistorik/preview.jpg pumpkins/preview.jpg
pumpkins/sky.jpg qingqong/preview.jpg randomisland/sky.jpg snow/preview.jpg towers/preview.jpg
vulcano/preview.jpg vulcano/sky2.jpg wildwestdv/sky.jpg
""")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def entries() -> list[tuple[str, str, str]]:
    """(domain, package, installed file path) for every image of the sample, in order."""
    out = [("photo", "endless-sky-data", f"{ES_LAND}{n}.jpg") for n in ENDLESS_SKY]
    out += [("photo", "widelands-data", f"{WL_LOAD}{n}.png") for n in WIDELANDS]
    out += [("photo", "budgie-backgrounds", f"{BUDGIE}{n}.jpg") for n in BUDGIE_PHOTOS]
    out += [("photo", "lxqt-themes", f"{LXQT}{n}") for n in LXQT_PHOTOS]
    out += [("painting", "warmux-data", f"{WARMUX}{n}") for n in WARMUX_PAINTINGS]
    return out


def output_name(package: str, path: str) -> str:
    short = {
        "endless-sky-data": "endless-sky",
        "widelands-data": "widelands",
        "budgie-backgrounds": "budgie",
        "lxqt-themes": "lxqt",
        "warmux-data": "warmux",
    }[package]
    base = {
        "endless-sky-data": ES_LAND,
        "widelands-data": WL_LOAD,
        "budgie-backgrounds": BUDGIE,
        "lxqt-themes": LXQT,
        "warmux-data": WARMUX,
    }[package]
    stem = path[len(base) :].rsplit(".", 1)[0]
    return f"{short}_{_slug(stem)}.jpg"


def check_denied(package: str) -> None:
    if package in DENY_PACKAGES or any(fnmatch.fnmatch(package, p) for p in DENY_PATTERNS):
        raise SystemExit(f"refusing {package}: held out for evaluation (deny-list)")


# ---------------------------------------------------------------- downloading


def download(debs: Path, work: Path) -> dict[str, Path]:
    """Download every package of PACKAGES into ``debs`` (skip those already there)."""
    found: dict[str, Path] = {}
    missing = []
    for pkg, (version, _suite, _root, _override) in PACKAGES.items():
        check_denied(pkg)
        ver = version.split(":", 1)[-1]
        hits = sorted(debs.glob(f"{pkg}_*{ver}_*.deb"))
        if hits:
            found[pkg] = hits[0]
        else:
            missing.append(pkg)
    if not missing:
        return found
    apt = work / "apt"
    for d in ("lists/partial", "cache/archives/partial", "etc"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    suites = sorted({PACKAGES[p][1] for p in missing})
    (apt / "etc/sources.list").write_text(
        "".join(f"deb {ARCHIVE} {s} main\n" for s in suites), encoding="utf-8"
    )
    (apt / "status").touch()
    opts = [
        f"-oDir::Etc::SourceList={apt}/etc/sources.list",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={apt}/lists",
        f"-oDir::Cache={apt}/cache",
        f"-oDir::State::status={apt}/status",
        "-oAcquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
        "-oAPT::Sandbox::User=root",
        "-oDebug::NoLocking=1",
    ]
    subprocess.run(["apt-get", *opts, "-q", "update"], check=True)
    for pkg in missing:
        version = PACKAGES[pkg][0]
        subprocess.run(
            ["apt-get", *opts, "-q", "download", f"{pkg}={version}"], check=True, cwd=debs
        )
        ver = version.split(":", 1)[-1]
        found[pkg] = sorted(debs.glob(f"{pkg}_*{ver}_*.deb"))[0]
    return found


def unpack(deb: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


# ---------------------------------------------------------------- licences


def parse_dep5(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Return (header, Files stanzas) of a DEP-5 copyright file."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields:
            paragraphs.append(fields)
    header = paragraphs[0] if paragraphs and "format" in paragraphs[0] else {}
    return header, [p for p in paragraphs if "files" in p]


def licence_of(copyright_file: Path, source_path: str) -> tuple[str, str]:
    """(licence, origin) of ``source_path`` from a DEP-5 file: the last matching stanza wins."""
    header, stanzas = parse_dep5(copyright_file.read_text(encoding="utf-8"))
    if not header:
        raise SystemExit(f"{copyright_file} is not DEP-5; add a licence override")
    match = None
    for stanza in stanzas:
        for pattern in stanza["files"].split():
            if fnmatch.fnmatchcase(source_path, pattern.removeprefix("./")):
                match = stanza
    if match is None:
        raise SystemExit(f"no Files stanza of {copyright_file} matches {source_path}")
    licence = match["license"].splitlines()[0].strip()
    holder = " ".join(match.get("copyright", "").split())
    source = header.get("source", "").splitlines()[0] if header.get("source") else ""
    origin = holder
    if holder.lower() in ("various", "") and "comment" not in match:
        body = " ".join(match["license"].splitlines()[1:]).split(". ")[0].strip()
        if body:
            origin = f"{holder}: {body}".strip(": ").rstrip(".")
    if source:
        origin = f"{origin} ({source})" if origin else source
    return licence, origin


# ---------------------------------------------------------------- images


def convert(src: Path, dest: Path) -> str:
    """Write the sample JPEG for ``src``; return the crop box applied ('' when none)."""
    with Image.open(src) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            im = Image.new("RGB", rgba.size, (255, 255, 255))
            im.paste(rgba, mask=rgba.getchannel("A"))
        else:
            im = im.convert("RGB")
    w, h = im.size
    crop = ""
    if w > MAX_ASPECT * h:
        nw = int(MAX_ASPECT * h)
        left = (w - nw) // 2
        im = im.crop((left, 0, left + nw, h))
        crop = f"{left},0,{left + nw},{h} of {w}x{h}"
    elif h > MAX_ASPECT * w:
        nh = int(MAX_ASPECT * w)
        top = (h - nh) // 2
        im = im.crop((0, top, w, top + nh))
        crop = f"0,{top},{w},{top + nh} of {w}x{h}"
    w, h = im.size
    scale = LONG_SIDE / max(w, h)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    im.save(dest, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=False)
    return crop


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="sample folder to (re)write")
    ap.add_argument("--debs", type=Path, help="folder with (or for) the downloaded .deb files")
    args = ap.parse_args(argv)

    for _domain, pkg, _path in entries():
        check_denied(pkg)
        if pkg not in PACKAGES:
            raise SystemExit(f"{pkg} is not in PACKAGES")

    with tempfile.TemporaryDirectory(prefix="scenegan-sample-") as tmp:
        work = Path(tmp)
        debs = args.debs or work / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        deb_files = download(debs, work)
        roots = {pkg: unpack(deb, work / "x" / pkg) for pkg, deb in deb_files.items()}

        for domain in ("photo", "painting"):
            shutil.rmtree(args.out / domain, ignore_errors=True)
        rows = []
        seen = set()
        for domain, pkg, path in entries():
            version, _suite, prefix, override = PACKAGES[pkg]
            name = output_name(pkg, path)
            if name in seen:
                raise SystemExit(f"duplicate output name {name}")
            seen.add(name)
            rel = f"{domain}/{name}"
            crop = convert(roots[pkg] / path, args.out / rel)
            if override:
                licence, origin = override
            else:
                copyright_file = roots[pkg] / "usr/share/doc" / pkg / "copyright"
                licence, origin = licence_of(copyright_file, path.removeprefix(prefix))
            rows.append((rel, pkg, version, "/" + path, crop, origin, licence))

    header = ("path", "package", "version", "upstream_file", "crop", "origin", "licence")
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    (args.out / "SOURCES.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = {d: sum(1 for r in rows if r[0].startswith(d + "/")) for d in ("photo", "painting")}
    print(f"wrote {counts['photo']} photos and {counts['painting']} paintings to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
