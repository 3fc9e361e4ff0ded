"""Built-in link profiles: how fast and how far each kind of link is.

A fabric's link names a profile (``profile: pcie4-x16``); the virtual clock uses its
``bandwidth`` (bytes per second, per direction) and ``latency`` (seconds before the first byte
arrives) to time the transfers over that link.

How the numbers are chosen, so they are comparable:

* **Interconnects** (PCIe, NVLink, SATA, USB, Ethernet): the data rate the standard allows after
  line encoding (8b/10b, 128b/130b, ...), per direction.  Packet and protocol overheads cost real
  transfers a further 5-20 %; the bus model may add that, the profile does not.
* **Storage paths** (``nvme-*``, ``hdd-7200``): the sustained sequential throughput and the
  typical single-request access time a representative drive's data sheet states, because there the
  device, not the link, is what limits a transfer.
* **Latency** of interconnects is the one-way time of a small transfer through the link and its
  controllers, a typical measured order of magnitude rather than a guaranteed figure.

Each profile's ``source`` says where its numbers come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from xv_core.errors import UnknownNameError, closest_name


@attrs.frozen
class LinkProfile:
    """One kind of link: ``bandwidth`` in bytes/s per direction, ``latency`` in seconds.

    ``full_duplex`` links carry ``bandwidth`` each way at once; on a half-duplex link (SATA,
    USB 2.0, a disk's head) both directions share it.  A fabric defines a link of its own by
    constructing one: ``LinkProfile("my-link", 2e9, 5e-6, "what it is", "where the numbers come
    from")``.
    """

    name: str
    bandwidth: float
    latency: float
    description: str
    source: str
    full_duplex: bool = True

    def transfer_time(self, nbytes: int) -> float:
        """Seconds to move ``nbytes`` over an otherwise idle link: latency + size / bandwidth."""
        return self.latency + nbytes / self.bandwidth


_GB = 1e9
_MB = 1e6


def disk_profile(name: str, *, rpm: float, seek: float, rate: float, description: str = "",
                 source: str = "") -> LinkProfile:
    """A hard disk as a link: each request waits an average ``seek`` (seconds) and half a turn
    of the platter (``30 / rpm`` seconds), then streams at the sequential ``rate`` (bytes/s).
    One head serves both directions, so the link is half duplex."""
    return LinkProfile(name, rate, seek + 30.0 / rpm,
                       description or f"a {rpm:g} rpm disk: {seek * 1e3:g} ms seek, "
                                      f"{rate / _MB:g} MB/s sequential",
                       source or "given by the fabric", full_duplex=False)

_PCIE_SPEC = ("PCI Express Base Specification (PCI-SIG): {gts} GT/s per lane with 128b/130b "
              "encoding = {lane:.3f} GB/s per lane per direction, x{lanes}")
_PCIE_LATENCY = ("latency: about 1 us for a small DMA through root complex and device, as measured "
                 "by Neugebauer et al., 'Understanding PCIe performance for end host networking', "
                 "SIGCOMM 2018")


def _pcie(gen: int, gts: float, lanes: int) -> LinkProfile:
    lane = gts * 128 / 130 / 8  # GB/s per lane after 128b/130b encoding
    return LinkProfile(
        name=f"pcie{gen}-x{lanes}",
        bandwidth=lane * lanes * _GB,
        latency=1e-6,
        description=f"PCI Express {gen}.0, {lanes} lanes ({lane * lanes:.2f} GB/s per direction)",
        source=_PCIE_SPEC.format(gts=gts, lane=lane, lanes=lanes) + "; " + _PCIE_LATENCY,
    )


_PROFILES: tuple[LinkProfile, ...] = (
    _pcie(3, 8.0, 16),
    _pcie(3, 8.0, 4),
    _pcie(4, 16.0, 16),
    _pcie(4, 16.0, 4),
    _pcie(5, 32.0, 16),
    _pcie(5, 32.0, 4),
    LinkProfile(
        "nvlink", 300 * _GB, 1e-6,
        "NVLink 3 between two A100 GPUs: 12 links of 25 GB/s per direction",
        "NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): 12 third-generation NVLinks, "
        "600 GB/s total bidirectional; latency: assumed of the order of PCIe's (about 1 us)"),
    LinkProfile(
        "sata3", 600 * _MB, 10e-6,
        "SATA revision 3 (6 Gb/s), half duplex",
        "SATA-IO, Serial ATA Revision 3.0: 6 Gb/s line rate with 8b/10b encoding = 600 MB/s; "
        "latency: AHCI command overhead of the order of 10 us (assumed; the drive adds its own)",
        full_duplex=False),
    LinkProfile(
        "nvme-gen3", 3.5 * _GB, 52e-6,
        "an NVMe SSD on PCIe 3.0 x4 (Samsung 970 EVO Plus class)",
        "Samsung 970 EVO Plus data sheet: 3,500 MB/s sequential read; 4 KB random read at "
        "queue depth 1 about 19,000 IOPS, i.e. about 52 us per request",
        full_duplex=False),
    LinkProfile(
        "nvme-gen4", 7.0 * _GB, 45e-6,
        "an NVMe SSD on PCIe 4.0 x4 (Samsung 980 PRO class)",
        "Samsung 980 PRO data sheet: 7,000 MB/s sequential read; 4 KB random read at queue "
        "depth 1 about 22,000 IOPS, i.e. about 45 us per request",
        full_duplex=False),
    LinkProfile(
        "hdd-7200", 200 * _MB, 12.7e-3,
        "a 7200 rpm hard disk: sequential 200 MB/s, a seek and half a turn per random access",
        "Seagate BarraCuda 3.5-inch data sheet: up to 220 MB/s sustained (200 MB/s taken as "
        "typical across the platter), 8.5 ms average seek; 7200 rpm gives 4.17 ms average "
        "rotational latency; 8.5 + 4.17 = 12.7 ms per random access",
        full_duplex=False),
    LinkProfile(
        "usb2", 40 * _MB, 125e-6,
        "USB 2.0 Hi-Speed (480 Mb/s), half duplex",
        "USB 2.0 Specification: 480 Mb/s signalling, at most 53 MB/s of bulk payload "
        "(13 x 512-byte packets per 125 us microframe); about 40 MB/s in practice, taken here; "
        "latency: one 125 us microframe",
        full_duplex=False),
    LinkProfile(
        "usb3", 500 * _MB, 20e-6,
        "USB 3.2 Gen 1, formerly USB 3.0 (5 Gb/s)",
        "USB 3.2 Specification: Gen 1 signals at 5 Gb/s with 8b/10b encoding = 500 MB/s per "
        "direction; latency: assumed 20 us for a small bulk transfer through the host controller"),
    LinkProfile(
        "usb3.2", 1212 * _MB, 20e-6,
        "USB 3.2 Gen 2 (10 Gb/s), formerly USB 3.1 Gen 2",
        "USB 3.2 Specification: Gen 2 signals at 10 Gb/s with 128b/132b encoding = 1.21 GB/s per "
        "direction; latency: assumed as for usb3"),
    LinkProfile(
        "1gbe", 125 * _MB, 50e-6,
        "Gigabit Ethernet (1000BASE-T)",
        "IEEE 802.3ab: 1 Gb/s data rate = 125 MB/s per direction (about 118 MB/s of TCP payload "
        "with 1500-byte frames); latency: about 50 us one way on a LAN through the kernel "
        "network stack (half a typical 0.1 ms ping)"),
    LinkProfile(
        "10gbe", 1.25 * _GB, 10e-6,
        "10 Gigabit Ethernet",
        "IEEE 802.3ae/an: 10 Gb/s data rate = 1.25 GB/s per direction; latency: about 10 us one "
        "way through NIC and kernel stack on a single switch"),
    LinkProfile(
        "100gbe", 12.5 * _GB, 5e-6,
        "100 Gigabit Ethernet",
        "IEEE 802.3ba/bj: 100 Gb/s data rate = 12.5 GB/s per direction; latency: about 5 us one "
        "way (data-centre NICs; RDMA reaches 1-2 us)"),
)

#: Every built-in profile by name, in the order above.
PROFILES: Mapping[str, LinkProfile] = MappingProxyType({p.name: p for p in _PROFILES})


def get_profile(name: str) -> LinkProfile:
    """The built-in profile ``name``; UnknownNameError listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise unknown_profile(name) from None


def unknown_profile(name: object, where: object | None = None) -> UnknownNameError:
    close = closest_name(name, PROFILES)
    return UnknownNameError(
        f"unknown link profile {name!r} (known: {', '.join(PROFILES)})", where=where,
        hint=f"did you mean {close!r}?" if close else "docs/fabric.md describes each profile")
