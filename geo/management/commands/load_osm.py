"""Load an OpenStreetMap extract into the road graph (geo_ways, geo_ways_vertices), replacing the one in use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from geo.selectors import road_graph_exists
from geo.services import NoRoads, road_graph_load


class Command(BaseCommand):
    help = (
        "Load the drivable roads of an OSM extract (.osm.pbf, .osm, .osm.gz) into the road graph, split at"
        " intersections, and swap it in atomically. Loading the same file again gives the same graph."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="an OSM extract: .osm.pbf, .osm or .osm.gz")
        parser.add_argument(
            "--if-empty", action="store_true", help="load only when no graph was ever loaded (silent otherwise)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["if_empty"] and road_graph_exists():
            return
        path = Path(opts["path"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        quiet = opts["verbosity"] == 0
        bars = [tqdm(desc="read", unit=" ways", disable=quiet, file=self.stderr)]

        def progress(step: str, n: int) -> None:
            if step == "total":
                bars[-1].close()
                bars.append(tqdm(desc="load", unit=" rows", total=n, disable=quiet, file=self.stderr))
            else:
                bars[-1].update(n)

        try:
            loaded = road_graph_load(path, progress=progress)
        except NoRoads as exc:
            raise CommandError(str(exc)) from exc
        finally:
            for bar in bars:
                bar.close()
        load = loaded.load
        self.stdout.write(
            f"roads: loaded {load.file_name} (sha256 {load.sha256[:12]}…): {load.ways:,} ways kept,"
            f" {load.segments:,} segments, {load.vertices:,} vertices, {load.length_km:,.1f} km of road"
            f" in {load.seconds:.1f} s"
        )
        if loaded.missing_locations:
            self.stdout.write(
                f"roads: {loaded.missing_locations:,} way nodes had no location in the file (a clipped extract):"
                " their ways were cut there"
            )
