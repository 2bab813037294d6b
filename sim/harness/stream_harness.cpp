// Bulk simulation of undense_top: streams input codes in, collects output codes, counts cycles.
// Driven from Python (undense.sim.bulk), which writes the inputs and reads the results as raw int32.
//
//   stream_harness INPUTS OUTPUTS STATS IN_PER_IMAGE OUT_PER_IMAGE OUT_BITS OUT_SIGNED CYCLE_BUDGET EVENTS WEIGHTS
//                  OUT_LANES [WAVE]
//
// Each output transfer carries OUT_LANES codes of OUT_BITS, the first in the low bits; an image's last
// transfer may carry fewer than OUT_LANES of its codes (the rest are padding).
//
// Built with UNDENSE_WEIGHT_PORT (a design whose weights sit in SPRAM), it streams the bytes of WEIGHTS into
// the w port while it offers the inputs; the design takes no input before its weights are loaded.
// STATS gets one line per image: the cycle its first input was accepted and the cycle its last output left.
// EVENTS gets "port count" for every event counter the design has; events.inc, written beside the build
// by undense.sim.bulk, lists them as EVENT(port) lines.
// The process exits 3 when the cycle budget runs out, printing which stream stalled.
// Verilator spells the ports i__valid, o__payload, ... as i___05Fvalid, o___05Fpayload (it escapes "__").
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "Vundense_top.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
using Trace = VerilatedFstC;
#elif VM_TRACE
#include "verilated_vcd_c.h"
using Trace = VerilatedVcdC;
#endif

static std::vector<int32_t> read_all(const char* path) {
    std::vector<int32_t> values;
    FILE* file = std::fopen(path, "rb");
    if (!file) { std::perror(path); std::exit(2); }
    int32_t value;
    while (std::fread(&value, sizeof value, 1, file) == 1) values.push_back(value);
    std::fclose(file);
    return values;
}

static std::vector<uint8_t> read_bytes(const char* path) {
    std::vector<uint8_t> bytes;
    FILE* file = std::fopen(path, "rb");
    if (!file) { std::perror(path); std::exit(2); }
    for (int byte; (byte = std::fgetc(file)) != EOF;) bytes.push_back(static_cast<uint8_t>(byte));
    std::fclose(file);
    return bytes;
}

int main(int argc, char** argv) {
    if (argc < 12) { std::fprintf(stderr, "usage: see stream_harness.cpp\n"); return 2; }
    const std::vector<int32_t> inputs = read_all(argv[1]);
    const std::vector<uint8_t> weights = read_bytes(argv[10]);
    const long in_per_image = std::atol(argv[4]), out_per_image = std::atol(argv[5]);
    const int out_bits = std::atoi(argv[6]);
    const bool out_signed = std::atoi(argv[7]) != 0;
    const long out_lanes = std::atol(argv[11]);
    const long transfers_per_image = (out_per_image + out_lanes - 1) / out_lanes;
    const uint64_t budget = std::strtoull(argv[8], nullptr, 10);
    const long images = static_cast<long>(inputs.size()) / in_per_image;

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vundense_top>(context.get());
#if VM_TRACE
    std::unique_ptr<Trace> trace;
    if (argc > 12) {
        context->traceEverOn(true);
        trace = std::make_unique<Trace>();
        top->trace(trace.get(), 99);
        trace->open(argv[12]);
    }
#endif
    std::vector<int32_t> outputs;
    outputs.reserve(images * out_per_image);
    std::vector<uint64_t> first_in(images, 0), last_out(images, 0);
    const uint64_t mask = out_bits >= 32 ? 0xffffffffull : ((1ull << out_bits) - 1);
    long transfers = 0;
    size_t next_in = 0, next_weight = 0;
    uint64_t cycle = 0;

    auto tick = [&]() {
        top->clk = 0; top->eval();
#if VM_TRACE
        if (trace) trace->dump(2 * cycle);
#endif
        top->clk = 1; top->eval();
#if VM_TRACE
        if (trace) trace->dump(2 * cycle + 1);
#endif
        ++cycle;
    };
    top->rst = 1; top->i___05Fvalid = 0; top->o___05Fready = 0;
#ifdef UNDENSE_WEIGHT_PORT
    top->w___05Fvalid = 0;
#endif
    for (int i = 0; i < 4; ++i) tick();
    top->rst = 0;
    cycle = 0;

    while (outputs.size() < static_cast<size_t>(images * out_per_image)) {
        if (cycle >= budget) {
            const bool input_pending = next_in < inputs.size();
            std::fprintf(stderr, "stalled after %llu cycles: %zu of %zu weight bytes loaded, %zu of %zu inputs "
                         "accepted (input stream %s), %zu of %ld outputs out (output stream %s)\n",
                         (unsigned long long)cycle, next_weight, weights.size(), next_in, inputs.size(),
                         input_pending && !top->i___05Fready ? "not ready" : "idle", outputs.size(),
                         images * out_per_image, top->o___05Fvalid ? "valid" : "never valid");
            return 3;
        }
        top->i___05Fvalid = next_in < inputs.size();
        if (top->i___05Fvalid) top->i___05Fpayload = static_cast<uint32_t>(inputs[next_in]);
        top->o___05Fready = 1;
#ifdef UNDENSE_WEIGHT_PORT
        top->w___05Fvalid = next_weight < weights.size();
        if (top->w___05Fvalid) top->w___05Fpayload = weights[next_weight];
        if (top->w___05Fvalid && top->w___05Fready) ++next_weight;
#endif
        // i__ready, w__ready and o__valid come straight from registers: they already hold this cycle's values
        const bool in_fire = top->i___05Fvalid && top->i___05Fready;
        const bool out_fire = top->o___05Fvalid && top->o___05Fready;
        const uint64_t payload = static_cast<uint64_t>(top->o___05Fpayload);
        if (in_fire) {
            if (next_in % in_per_image == 0) first_in[next_in / in_per_image] = cycle;
            ++next_in;
        }
        if (out_fire) {
            const long step = transfers % transfers_per_image;
            for (long lane = 0; lane < out_lanes && step * out_lanes + lane < out_per_image; ++lane) {
                const uint64_t code = (payload >> (lane * out_bits)) & mask;
                int64_t value = static_cast<int64_t>(code);
                if (out_signed && (code >> (out_bits - 1)) & 1) value -= static_cast<int64_t>(1ull << out_bits);
                outputs.push_back(static_cast<int32_t>(value));
            }
            ++transfers;
            if (transfers % transfers_per_image == 0) last_out[transfers / transfers_per_image - 1] = cycle;
        }
        tick();
    }
#if VM_TRACE
    if (trace) trace->close();
#endif
    top->final();
    FILE* out = std::fopen(argv[2], "wb");
    std::fwrite(outputs.data(), sizeof(int32_t), outputs.size(), out);
    std::fclose(out);
    FILE* stats = std::fopen(argv[3], "w");
    for (long i = 0; i < images; ++i)
        std::fprintf(stats, "%llu %llu\n", (unsigned long long)first_in[i], (unsigned long long)last_out[i]);
    std::fclose(stats);
    FILE* events = std::fopen(argv[9], "w");
#define EVENT(port) std::fprintf(events, "%s %llu\n", #port, (unsigned long long)top->port);
#include "events.inc"
#undef EVENT
    std::fclose(events);
    return 0;
}
