"""The demo fleet `make run` shows: its account and IoT Hub push source, 20 vehicles with Kenyan and Ugandan plates,
cost centres, assigned cities, active trackers, and a few drivers on duty. Provisioning is idempotent: what exists is
reused, what is missing is created, nothing a user changed (a suspended device, another driver) is undone.

The vehicles drive wherever the loaded road graph is — with the vendored extract, Monaco and the French communes
around it — whatever city they are assigned to.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import TextIO

from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from domain.models import AssignedCity, CostCentre, Device, Driver, DriverAssignment, Lifecycle, Vehicle
from domain.plates import normalize_plate
from domain.services import device_transition, vehicle_assign_driver
from events.models import PushSource

DEMO_ACCOUNT = "Demo fleet"
DEMO_SOURCE = "demo-hub"
DEMO_VEHICLES = 20
DEMO_DEPOTS = 3  # the simulator's depots: vehicle n starts at depot (n - 1) % 3 (Config.depots)
IMEI_PREFIX = "86912004"  # + 7 digits: 15-digit IMEIs no real tracker of ours has

PLATES = (
    "KDA 101A", "KDA 214C", "KDB 332F", "KDB 417K", "KDC 520M", "KDC 638P", "KDD 745R", "KDD 851T", "KDE 963W",
    "KDE 072X", "KDF 184Y", "KDF 296Z", "KDG 305A", "KDG 419B",  # Kenya
    "UBA 512C", "UBB 627D", "UBC 734E", "UBD 846F", "UBE 958G", "UBF 061H",  # Uganda
)  # fmt: skip
COST_CENTRES = (("Distribution", "CC-100"), ("Field service", "CC-200"), ("Sales", "CC-300"), ("Executive", "CC-900"))
KENYAN_CITIES = ("Nairobi", "Mombasa", "Kisumu")
UGANDAN_CITIES = ("Kampala",)
MODELS = ("Isuzu NPR", "Toyota Hilux", "Toyota Probox", "Mitsubishi Canter", "Nissan NV200")
DEVICE_MODELS = ("VL802", "VL802", "VL103", "GT06N")
DRIVERS = (
    ("DEMO-D01", "Jane Wanjiru", "+254711000101", "DL-1001"),
    ("DEMO-D02", "Peter Otieno", "+254711000102", "DL-1002"),
    ("DEMO-D03", "Grace Akinyi", "+254711000103", "DL-1003"),
    ("DEMO-D04", "Samuel Kiprop", "+254711000104", "DL-1004"),
    ("DEMO-D05", "Mary Nakato", "+256772000105", "UG-2005"),
    ("DEMO-D06", "Joseph Okello", "+256772000106", "UG-2006"),
)
DEVICE_REASON = "demo fleet (make run)"


def demo_imei(n: int) -> str:
    """The IMEI of demo vehicle n (1-based)."""
    return f"{IMEI_PREFIX}{n:07d}"


def demo_imeis(count: int) -> list[str]:
    return [demo_imei(n) for n in range(1, count + 1)]


def demo_plate(n: int) -> str:
    """Vehicle n's plate as written on it: the list above, then Kenyan-style plates."""
    if n <= len(PLATES):
        return PLATES[n - 1]
    return f"KDJ {n % 1000:03d}{chr(65 + (n // 1000) % 26)}"


def demo_city(n: int) -> tuple[str, str]:
    plate = demo_plate(n)
    if plate.startswith("U"):
        return UGANDAN_CITIES[n % len(UGANDAN_CITIES)], "UG"
    return KENYAN_CITIES[n % len(KENYAN_CITIES)], "KE"


@dataclass
class Provisioned:
    account: str
    source: str
    vehicles: int
    vehicles_created: int
    devices_created: int
    devices_activated: int
    devices_active: int
    drivers_on_duty: int
    source_output: str
    source_created: bool


def provision_demo_fleet(
    *, vehicles: int = DEMO_VEHICLES, source: str = DEMO_SOURCE, account: str = DEMO_ACCOUNT, out: TextIO | None = None
) -> Provisioned:
    """The demo account and IoT Hub source (through `manage.py push_source … --create-account`: a secret is generated
    when the source is new, kept when it exists), then the vehicles, their devices (active) and the drivers."""
    existed = PushSource.objects.filter(name=source).exists()
    source_out = StringIO()
    args = [source, "--kind", "jimi-iothub", "--account", account, "--create-account"]
    call_command("push_source", *args, stdout=source_out)
    push_source = PushSource.objects.select_related("account").get(name=source)
    now = timezone.now()
    result = Provisioned(
        account=push_source.account.name,
        source=source,
        vehicles=vehicles,
        vehicles_created=0,
        devices_created=0,
        devices_activated=0,
        devices_active=0,
        drivers_on_duty=0,
        source_output=source_out.getvalue(),
        source_created=not existed,
    )
    with transaction.atomic():
        centres = [
            CostCentre.objects.get_or_create(name=name, defaults={"code": code})[0] for name, code in COST_CENTRES
        ]
        fleet: list[Vehicle] = []
        for n in range(1, vehicles + 1):
            city_name, country = demo_city(n)
            city = AssignedCity.objects.get_or_create(name=city_name, defaults={"country_code": country})[0]
            vehicle, created = Vehicle.objects.get_or_create(
                plate=normalize_plate(demo_plate(n)),
                defaults={
                    "model": MODELS[n % len(MODELS)],
                    "depot": f"Depot {chr(65 + (n - 1) % DEMO_DEPOTS)}",
                    "cost_centre": centres[n % len(centres)],
                    "assigned_city": city,
                },
            )
            result.vehicles_created += created
            fleet.append(vehicle)
            device = Device.objects.filter(imei=demo_imei(n)).first()
            if device is None:
                device = Device.objects.create(
                    imei=demo_imei(n),
                    account=push_source.account,
                    vehicle=vehicle,
                    name=demo_plate(n),
                    model=DEVICE_MODELS[n % len(DEVICE_MODELS)],
                    sim_number=f"+2547{n:08d}",
                )
                result.devices_created += 1
            elif device.vehicle_id is None:  # first seen through a push (the simulator ran first): fit it
                device.vehicle = vehicle
                device.name = device.name or demo_plate(n)
                device.model = device.model or DEVICE_MODELS[n % len(DEVICE_MODELS)]
                device.save(update_fields=["vehicle", "name", "model"])
            if device.lifecycle == Lifecycle.PROVISIONED:
                device_transition(device=device, to=Lifecycle.ACTIVE, reason=DEVICE_REASON)
                result.devices_activated += 1
            result.devices_active += device.lifecycle == Lifecycle.ACTIVE
        for (hr_id, name, phone, licence), vehicle in zip(DRIVERS, fleet, strict=False):
            driver = Driver.objects.get_or_create(
                hr_id=hr_id, defaults={"name": name, "phone": phone, "licence_number": licence}
            )[0]
            busy = DriverAssignment.objects.filter(period__contains=now)
            if not busy.filter(driver=driver).exists() and not busy.filter(vehicle=vehicle).exists():
                vehicle_assign_driver(vehicle=vehicle, driver=driver, start=now, note=DEVICE_REASON)
        result.drivers_on_duty = DriverAssignment.objects.filter(
            period__contains=now, vehicle__in=fleet, driver__hr_id__in=[d[0] for d in DRIVERS]
        ).count()
    if out is not None:
        if result.source_created:
            out.write(result.source_output)
        out.write(
            f"demo fleet: {vehicles} vehicles ({result.vehicles_created} new), {result.devices_active} devices active"
            f" ({result.devices_activated} activated now), {result.drivers_on_duty} drivers on duty;"
            f" account {result.account!r}, IoT Hub source {source!r}\n"
        )
    return result
