# gridssl - build, test, cross-check.
#   make              ./gridssl (float; trains) and ./gridssl_f64 (double; gradient check)
#   make test         unit tests (float and double builds) + command-line tests; ends "N passed, N failed"
#   make fuzz         10 000 mutated configs, checkpoints and .npy files against the promises on bad input
#   make crosscheck   numpy recomputes one dumped batch (needs python3-numpy; not part of make test)
#   make seeds        seed statistics of a recipe: make seeds ARGS="--seeds 1-10 --screen lambda_iso=0.02"
#   make baselines    SIC, Cueva & Wei and Sorscher et al. side by side: what each grows, and in larger boxes
#   make demo         train the default, evaluate it, say where the montage is
#   make demo-check   the default run must give ref_outputs/default_seed4.* (the README's picture)
#   make bench        seconds per step, per phase, GFLOP/s, RSS, and PyTorch's time for the same step
#   make portability  the determinism matrix: every compiler, libc and CPU (qemu, wine) must give
#                     the golden bytes (needs the toolchains .ci/run installs)
#   make debug        -O0 -g build, e.g. valgrind --leak-check=full ./gridssl_debug train --config data/tiny.cfg
#   make asan         address + undefined-behaviour sanitizers
#
# Determinism (DETERMINISM in gridssl.c's manual) is part of the build: no -ffast-math, no FMA contraction, SSE2 (never x87)
# on 32-bit x86, float arithmetic in float on s390x (gcc's C11 mode would promote it to double).
# CFLAGS may change optimisation freely; it never changes the bytes gridssl writes.
CC ?= cc
NATIVE := $(shell $(CC) -march=native -x c -c -o /dev/null /dev/null 2> /dev/null && echo -march=native)
# 512-bit vectors where the compiler knows the flag (x86 with AVX-512 uses 256 by default)
WIDE := $(shell $(CC) -mprefer-vector-width=512 -x c -c -o /dev/null /dev/null 2> /dev/null && echo -mprefer-vector-width=512)
# sqrt without errno: still the correctly rounded instruction, but now it vectorises (AdamW's update)
NOERRNO := $(shell $(CC) -fno-math-errno -x c -c -o /dev/null /dev/null 2> /dev/null && echo -fno-math-errno)
CFLAGS ?= -O3 $(NATIVE) $(WIDE) $(NOERRNO)
DETERMINISM = -std=c11 -ffp-contract=off
WARNINGS = -Wall -Wextra -pedantic
MACHINE := $(shell $(CC) -dumpmachine 2> /dev/null)
ifneq (,$(filter i386% i486% i586% i686%,$(MACHINE)))
DETERMINISM += -msse2 -mfpmath=sse
endif
ifneq (,$(filter s390%,$(MACHINE)))
DETERMINISM += -fexcess-precision=fast
endif
LDLIBS = -lm -lpthread
ifneq (,$(findstring mingw,$(MACHINE)))
LDLIBS += -static # a self-contained .exe: winpthreads linked in, no DLL to find
endif
BUILD = $(CC) $(CFLAGS) $(DETERMINISM) $(WARNINGS) # DETERMINISM after CFLAGS: it wins
PYTHON ?= /usr/bin/python3

BIN = gridssl # make BIN=path builds the binary there (tests/portability.sh builds every target so)

all: $(BIN) gridssl_f64

$(BIN): gridssl.c gridssl.h
	$(BUILD) -o $@ gridssl.c $(LDLIBS)

gridssl_f64: gridssl.c gridssl.h
	$(BUILD) -DGRIDSSL_DOUBLE -o $@ gridssl.c $(LDLIBS)

tests/unit_f32: tests/unit.c gridssl.c gridssl.h
	$(BUILD) -Wno-unused-function -o $@ tests/unit.c $(LDLIBS)

tests/unit_f64: tests/unit.c gridssl.c gridssl.h
	$(BUILD) -Wno-unused-function -DGRIDSSL_DOUBLE -o $@ tests/unit.c $(LDLIBS)

tests/fuzz: tests/fuzz.c gridssl.c gridssl.h
	$(BUILD) -Wno-unused-function -o $@ tests/fuzz.c $(LDLIBS)

fuzz: gridssl tests/fuzz # ten thousand mutated configs, checkpoints and .npy files; ends "N passed, N failed"
	./tests/fuzz

test: gridssl gridssl_f64 tests/unit_f32 tests/unit_f64
	CC="$(CC)" sh tests/run.sh

crosscheck: gridssl
	sh tests/crosscheck.sh $(PYTHON)

portability: gridssl
	sh tests/portability.sh

bench: gridssl
	$(PYTHON) tests/bench.py

seeds: gridssl # a recipe over seeds, side by side: one table row per seed (tests/seeds.sh says how)
	sh tests/seeds.sh $(ARGS)

ablations: gridssl # the paper's Fig. 7 over seeds 1-5: one table row per variant (about 1 h on 2 cores)
	sh tests/ablations.sh $(ARGS)

baselines: gridssl # SIC beside Cueva & Wei and Sorscher et al. (and its linear ablation): train, evaluate, two tables
	sh tests/baselines.sh $(ARGS)

generalisation: gridssl # CKPT=... in larger boxes and under other walks (tests/generalisation.sh; OUT=DIR)
	sh tests/generalisation.sh $(CKPT) $(or $(OUT),$(dir $(CKPT))generalisation)

demo: gridssl # the default run, end to end, and where to look
	./gridssl train --out out
	./gridssl eval out/checkpoint.bin
	@echo "montage: out/eval/box_2m/montage.png   scores: out/eval/box_2m/scores.csv   summary: out/eval/box_2m/summary.json"

demo-check: gridssl # about 3 min on 2 cores; .ci/run runs it
	sh tests/demo_check.sh

debug: gridssl.c gridssl.h
	$(CC) -O0 -g $(DETERMINISM) $(WARNINGS) -o gridssl_debug gridssl.c $(LDLIBS)

asan: gridssl.c gridssl.h
	$(CC) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all $(DETERMINISM) $(WARNINGS) -o gridssl_asan gridssl.c $(LDLIBS)

clean:
	rm -rf gridssl gridssl_f64 gridssl_debug gridssl_asan tests/unit_f32 tests/unit_f64 tests/fuzz tests/build tests/out tests/out_demo

.PHONY: all test fuzz crosscheck seeds ablations baselines generalisation portability bench demo demo-check debug asan clean
