# nonsite: two commands on a fresh machine.
#   make demo   runs the whole pipeline on real frames and prints the violations found
#   make test   runs the test suite
#
# The heavy dependencies (torch, ultralytics, openvino: several GB) live in one virtual
# environment under ~/.cache keyed by the dependency list, so every clone reuses it.
# The clone's own .venv is a thin environment that sees those packages through a .pth file
# and holds nothing but an editable install of this checkout.

PYTHON ?= python3
DEPS_KEY := $(shell sed -n '/^dependencies = \[/,/^\[project.scripts\]/p' pyproject.toml | sha256sum | cut -c1-16)
DEPS_VENV := $(HOME)/.cache/nonsite/deps-$(DEPS_KEY)
SITE := lib/python$(shell $(PYTHON) -c 'import sys;print(f"{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages
SHARED_MODELS := $(abspath ../shared/models)
SHARED_DATASETS := $(abspath ../shared/datasets)

ifneq ($(wildcard $(SHARED_MODELS)),)
export NONSITE_MODELS_DIR ?= $(SHARED_MODELS)
endif
ifneq ($(wildcard $(SHARED_DATASETS)),)
export NONSITE_DATASETS_DIR ?= $(SHARED_DATASETS)
endif
export YOLO_OFFLINE ?= True
export YOLO_VERBOSE ?= False

.PHONY: demo test venv models system-deps clean

demo: .venv/.ok models
	.venv/bin/nonsite demo

# pytest exits 5 when it collected no tests: a broken suite, reported and failed as such.
test: .venv/.ok models system-deps
	@.venv/bin/python -m pytest -q $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

venv: .venv/.ok

# No file prerequisite: the directory name already encodes the dependency list, and a fresh
# clone's newer pyproject.toml must not trigger a rebuild of the shared environment.
$(DEPS_VENV)/.ok:
	rm -rf $(DEPS_VENV)
	$(PYTHON) -m venv $(DEPS_VENV)
	$(DEPS_VENV)/bin/python -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(DEPS_VENV)/bin/python -c 'import tomllib;p=tomllib.load(open("pyproject.toml","rb"))["project"];print("\n".join(p["dependencies"]+p["optional-dependencies"]["test"]))' > $(DEPS_VENV)/requirements.txt
	$(DEPS_VENV)/bin/python -m pip install -q -r $(DEPS_VENV)/requirements.txt
	touch $@

.venv/.ok: $(DEPS_VENV)/.ok pyproject.toml
	rm -rf .venv
	$(PYTHON) -m venv --without-pip .venv
	echo "$(DEPS_VENV)/$(SITE)" > .venv/$(SITE)/_nonsite_deps.pth
	.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Preferred weights that are build products: the fp32 OpenVINO export of the COCO yolov8n
# checkpoint (benchmarks/model_choice.py) and of each trained detector in models/weights/*.pt.
# Manifests whose checkpoint is absent fall back to their later candidates (the INT8 files).
models: .venv/.ok
	.venv/bin/nonsite models --build

# Browser tests drive Debian's chromium; CJK fonts render the plates the OCR tests read; FFmpeg
# encodes event clips and serves real footage as live streams to the camera tests, some of them
# over RTSP through rtsp-server-perl (UDP) and GStreamer's RTSP server (TCP, run by Debian's
# python3: tests/rtsp_tcp_camera.py). Pango lays out the case documents' PDFs (WeasyPrint).
system-deps:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc ] || missing="$$missing fonts-noto-cjk"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v rtsp-server-perl >/dev/null || missing="$$missing rtsp-server-perl"; \
	/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null || \
		missing="$$missing python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	ldconfig -p | grep -q libpangoft2-1.0 || missing="$$missing libpangoft2-1.0-0"; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

clean:
	rm -rf .venv var
