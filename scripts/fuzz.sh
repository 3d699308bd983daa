#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (a cargo-fuzz project, see docs/fuzzing.md) on the stable toolchain.
# Exits non-zero if any target fails, printing the reproducer path.
#
#   scripts/fuzz.sh [--replay | --short | --long SECONDS] [TARGET...] [-- LIBFUZZER_FLAG...]
#
# --replay (what the test command runs) builds the targets as plain binaries into CARGO_TARGET_DIR,
# next to the workspace's own build so that they share its compiled dependencies, and runs every
# regression input (fuzz/regressions/<target>/) and committed seed (fuzz/corpus/<target>/) once: no
# instrumentation, no cargo-fuzz, no mutation.
# --short builds with cargo-fuzz (coverage instrumentation and a sanitizer) and runs each target a
# few seconds (WECOM_FUZZ_SHORT_SECS, default 5) after its regression inputs. --long SECONDS runs
# each target that long.
#
# Slow things are cached under ${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}: cargo-fuzz itself and
# the corpus libFuzzer grows (cache/fuzz-corpus/<target>/; the committed seeds are only read). The
# instrumented build goes to WECOM_FUZZ_TARGET_DIR (default: fuzz/ under CARGO_TARGET_DIR, else
# target/fuzz), apart from the normal build. WECOM_FUZZ_SANITIZER picks the sanitizer (default
# address; `none` builds and runs faster and still catches every panic).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

secs=${WECOM_FUZZ_SHORT_SECS:-5}
mode=fuzz
targets=()
extra=()
while (($#)); do
  case $1 in
    --replay) mode=replay ;;
    --short) secs=${WECOM_FUZZ_SHORT_SECS:-5} ;;
    --long)
      [[ ${2:-} =~ ^[0-9]+$ ]] || usage
      secs=$2
      shift
      ;;
    --)
      shift
      extra=("$@")
      break
      ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) targets+=("$1") ;;
  esac
  shift
done

cache=${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}

all_targets() {
  sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^wecom-archive-fuzz$'
}

if [[ $mode == replay ]]; then
  ((${#targets[@]})) || mapfile -t targets < <(all_targets)
  echo "== building ${#targets[@]} fuzz targets (plain, for replay)" >&2
  bins=()
  for t in "${targets[@]}"; do bins+=(--bin "$t"); done
  cargo build --manifest-path fuzz/Cargo.toml --locked "${bins[@]}"
  bin_dir=${CARGO_TARGET_DIR:-$root/fuzz/target}/debug
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  export WECOM_FUZZ_SCRATCH=$scratch/files
  mkdir -p "$WECOM_FUZZ_SCRATCH"
  failed=()
  total=0
  for t in "${targets[@]}"; do
    inputs=()
    for dir in "fuzz/regressions/$t" "fuzz/corpus/$t"; do
      [[ -d $dir ]] && mapfile -t -O "${#inputs[@]}" inputs < <(find "$dir" -type f | sort)
    done
    ((${#inputs[@]})) || continue
    total=$((total + ${#inputs[@]}))
    log=$scratch/$t.log
    # Given files, a libFuzzer binary runs each once and stops at the first failure.
    if ! "$bin_dir/$t" "${inputs[@]}" >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      bad=$(sed -n 's/^Running: //p' "$log" | tail -n 1)
      echo "FAILED: $t on ${bad:-an input}; reproduce with: $bin_dir/$t ${bad:-<input>}" >&2
      failed+=("$t")
    fi
  done
  if ((${#failed[@]})); then
    echo "fuzz replay: ${#failed[@]} target(s) failed: ${failed[*]}"
    exit 1
  fi
  echo "fuzz replay: $total inputs over ${#targets[@]} targets passed"
  exit 0
fi
fuzz_target_dir=${WECOM_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/fuzz}
sanitizer=${WECOM_FUZZ_SANITIZER:-address}
cargo_fuzz_version=0.13.2

# cargo-fuzz from crates.io, built once into the cache.
cargo_fuzz_root=$cache/cargo-fuzz
if [[ ! -x $cargo_fuzz_root/bin/cargo-fuzz ]]; then
  echo "== installing cargo-fuzz $cargo_fuzz_version into $cargo_fuzz_root" >&2
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" \
    --root "$cargo_fuzz_root" --target-dir "$cargo_fuzz_root/build"
  rm -rf "$cargo_fuzz_root/build"
fi
export PATH=$cargo_fuzz_root/bin:$PATH
# cargo-fuzz passes -Z flags (sanitizer, coverage instrumentation) that stable rustc accepts only
# with this set; the stable toolchain ships the sanitizer runtimes itself.
export RUSTC_BOOTSTRAP=1

if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

echo "== building ${#targets[@]} fuzz targets (sanitizer: $sanitizer) into $fuzz_target_dir" >&2
build=(cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" --target-dir "$fuzz_target_dir")
if ((${#targets[@]} == $(cargo fuzz list --fuzz-dir fuzz | wc -l))); then
  "${build[@]}"
else
  for t in "${targets[@]}"; do "${build[@]}" "$t"; done
fi
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$fuzz_target_dir/$host/release

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Targets that need files put them here (see fuzz/src/lib.rs).
export WECOM_FUZZ_SCRATCH=$scratch/files
mkdir -p "$WECOM_FUZZ_SCRATCH"

failed=()
summary=()
for t in "${targets[@]}"; do
  bin=$bin_dir/$t
  artifacts=$root/fuzz/artifacts/$t/
  mkdir -p "$artifacts"
  log=$scratch/$t.log

  regressions=fuzz/regressions/$t
  if compgen -G "$regressions/*" >/dev/null; then
    echo "== $t: regression inputs" >&2
    if ! "$bin" -runs=0 -artifact_prefix="$artifacts" "$regressions" >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      echo "FAILED: $t on a regression input; reproduce with: $bin <file of $regressions>" >&2
      failed+=("$t")
      continue
    fi
  fi

  work_corpus=$cache/fuzz-corpus/$t
  mkdir -p "$work_corpus" "fuzz/corpus/$t"
  echo "== $t: ${secs}s" >&2
  status=0
  "$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "${extra[@]}" "$work_corpus" "fuzz/corpus/$t" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -oE '(cov|ft|corp): [0-9]+(/[0-9]+[a-zA-Z]*)?' "$log" | tail -n 3 | tr '\n' ' ')
  summary+=("$(printf '%-22s execs %-10s %s' "$t" "${execs:-?}" "$cov")")
  if ((status != 0)); then
    tail -n 40 "$log" >&2
    reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "FAILED: $t crashed; reproducer: ${reproducer:-see the log above}" >&2
    echo "  reproduce with: $bin ${reproducer:-<input>}" >&2
    failed+=("$t")
  fi
done

echo "== fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets passed"
