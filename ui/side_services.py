"""The station's side services, started once the station is open: the search indexer (embeds each
committed inspection and backfills older ones, throttled), the drift watch (alarms as chained
events, banner state for QA), both listening through Station.recorded_listeners (the drift watch
also through DecisionLog.decision_listeners), and the line's outputs and triggers ([output.*],
[trigger]: publishers that read the committed log)."""

from __future__ import annotations

from dataclasses import dataclass

from inspector.config import StationConfig
from inspector.drift.watch import DriftWatch
from inspector.line.outputs import LineOutputs
from inspector.search.indexer import SearchIndexer
from inspector.station import Station


@dataclass
class SideServices:
    indexer: SearchIndexer | None
    drift: DriftWatch | None
    line: LineOutputs | None = None  # None when the station has no [output.*] and no [trigger]

    def stop(self) -> None:
        if self.line is not None:
            self.line.stop()  # publishes what is committed first (a few seconds at most); the rest waits
        if self.indexer is not None:
            self.indexer.stop()
        if self.drift is not None:
            self.drift.close()


def start_side_services(station: Station, config: StationConfig) -> SideServices:
    """Start the indexer and the drift watch on a station that has a database."""
    if station.log is None:
        return SideServices(None, None)
    line = None
    if config.line.mqtt.enabled or config.line.opcua.enabled or config.line.trigger.enabled:
        line = LineOutputs(config.line, station.log.sdb.path)
        station.recorded_listeners.append(lambda _result: line.committed())  # publish now, not at the next poll
        line.start()
    path = station.log.sdb.path
    indexer = SearchIndexer(path, lambda: station.scorer, pause_s=0.5)
    station.recorded_listeners.append(
        lambda r: indexer.submit(int(r.inspection_id), r.frame.rgb, r.embedding, r.ranking.model_id)
    )
    indexer.start()
    drift = DriftWatch(path, config.drift) if config.drift.enabled else None
    if drift is not None:
        station.recorded_listeners.append(drift)
        station.log.decision_listeners.append(drift.decided)  # agreement and "none of these" rates
    return SideServices(indexer, drift, line)
