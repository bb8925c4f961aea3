/* A narrow C interface to SVT-AV1 (Debian's libsvtav1enc-dev) for
 * mock-streamer's AV1 encoder (src/av1.rs). The C compiler reads the
 * library's own headers, so no Rust copy of its large configuration struct
 * can drift from the installed version. Real-time settings: low-delay
 * prediction, no lookahead or temporal filtering, CBR, one logical
 * processor, no periodic keyframes. (SVT-AV1 1.4 forces keyframes only in
 * random-access CRF/CQP mode: av1.rs opens a new encoder instead.) */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <svt-av1/EbSvtAv1Enc.h>
#include <time.h>

/* Opening and closing encoders one at a time: SVT-AV1 1.4 sets up global
 * state (its CPU-specific function tables) unguarded on the first open, and
 * with two encoders opened and closed at once (parallel tests, simulcast
 * layers) a close now and then never saw its end of stream and hung in
 * deinit. Encoding itself runs on each encoder's own threads, unlocked. */
static pthread_mutex_t lifecycle = PTHREAD_MUTEX_INITIALIZER;

typedef struct ShimEncoder {
    EbComponentType *handle;
    uint32_t width, height;
    int64_t pts;
} ShimEncoder;

/* SVT-AV1 gives the threads it starts real-time priority (SCHED_FIFO) when
 * the process runs as root, as CI does: on two cores its busy threads could
 * then starve the streamer's network tasks and every other process. Put
 * every real-time thread of this process back to normal scheduling (nothing
 * else in the process asks for real time). */
static void drop_realtime_threads(void) {
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        int tid = atoi(entry->d_name);
        if (tid <= 0) continue;
        int policy = sched_getscheduler(tid);
        if (policy == SCHED_FIFO || policy == SCHED_RR) {
            struct sched_param normal;
            memset(&normal, 0, sizeof normal);
            (void)sched_setscheduler(tid, SCHED_OTHER, &normal);
        }
    }
    closedir(tasks);
}

/* Returns 0 and fills *out, or the library's error code. */
static int32_t open_locked(uint32_t width, uint32_t height, uint32_t fps, uint32_t bitrate_bps, int32_t preset,
                           ShimEncoder **out) {
    /* The library logs its banner and settings at every open unless told
     * otherwise: errors only, unless the user set SVT_LOG. */
    setenv("SVT_LOG", "1", 0);
    EbComponentType *handle = NULL;
    EbSvtAv1EncConfiguration cfg;
    memset(&cfg, 0, sizeof cfg);
    EbErrorType err = svt_av1_enc_init_handle(&handle, NULL, &cfg);
    if (err != EB_ErrorNone) return (int32_t)err;
    cfg.enc_mode = (int8_t)preset;
    cfg.source_width = width;
    cfg.source_height = height;
    cfg.frame_rate_numerator = fps;
    cfg.frame_rate_denominator = 1;
    cfg.encoder_bit_depth = 8;
    cfg.encoder_color_format = EB_YUV420;
    cfg.rate_control_mode = SVT_AV1_RC_MODE_CBR;
    cfg.target_bit_rate = bitrate_bps;
    cfg.pred_structure = SVT_AV1_PRED_LOW_DELAY_B;
    cfg.intra_period_length = -1;
    cfg.look_ahead_distance = 0;
    cfg.enable_tf = 0;
    cfg.scene_change_detection = 0;
    cfg.logical_processors = 1;
    err = svt_av1_enc_set_parameter(handle, &cfg);
    if (err == EB_ErrorNone) err = svt_av1_enc_init(handle);
    drop_realtime_threads();
    if (err != EB_ErrorNone) {
        svt_av1_enc_deinit_handle(handle);
        return (int32_t)err;
    }
    ShimEncoder *e = calloc(1, sizeof *e);
    if (!e) {
        svt_av1_enc_deinit(handle);
        svt_av1_enc_deinit_handle(handle);
        return -1;
    }
    e->handle = handle;
    e->width = width;
    e->height = height;
    *out = e;
    return 0;
}

int32_t shim_svt_open(uint32_t width, uint32_t height, uint32_t fps, uint32_t bitrate_bps, int32_t preset,
                      ShimEncoder **out) {
    pthread_mutex_lock(&lifecycle);
    int32_t err = open_locked(width, height, fps, bitrate_bps, preset, out);
    pthread_mutex_unlock(&lifecycle);
    return err;
}

/* The sequence header OBU (the stream header). Copies at most cap bytes
 * into buf; returns the header's length, or a negative error. */
int32_t shim_svt_stream_header(ShimEncoder *e, uint8_t *buf, uint32_t cap) {
    EbBufferHeaderType *header = NULL;
    EbErrorType err = svt_av1_enc_stream_header(e->handle, &header);
    if (err != EB_ErrorNone || !header) return -1;
    uint32_t n = header->n_filled_len;
    if (n <= cap) memcpy(buf, header->p_buffer, n);
    svt_av1_enc_stream_header_release(header);
    return (int32_t)n;
}

/* Send one I420 picture. */
int32_t shim_svt_send(ShimEncoder *e, const uint8_t *y, const uint8_t *u, const uint8_t *v, uint32_t y_stride,
                      uint32_t uv_stride, int32_t force_key) {
    EbSvtIOFormat io;
    memset(&io, 0, sizeof io);
    io.luma = (uint8_t *)y;
    io.cb = (uint8_t *)u;
    io.cr = (uint8_t *)v;
    io.y_stride = y_stride;
    io.cb_stride = uv_stride;
    io.cr_stride = uv_stride;
    io.width = e->width;
    io.height = e->height;
    io.color_fmt = EB_YUV420;
    io.bit_depth = EB_EIGHT_BIT;
    EbBufferHeaderType in;
    memset(&in, 0, sizeof in);
    in.size = sizeof in;
    in.p_buffer = (uint8_t *)&io;
    in.n_filled_len = y_stride * e->height + 2 * uv_stride * (e->height / 2);
    in.n_alloc_len = in.n_filled_len;
    in.pts = e->pts++;
    in.pic_type = EB_AV1_INVALID_PICTURE;
    (void)force_key;
    return (int32_t)svt_av1_enc_send_picture(e->handle, &in);
}

/* One encoded packet, if the library has one: copies at most cap bytes into
 * buf and returns the packet's length (0: none ready), sets *key for a key
 * frame; negative on error. */
int32_t shim_svt_receive(ShimEncoder *e, uint8_t *buf, uint32_t cap, int32_t *key) {
    EbBufferHeaderType *packet = NULL;
    EbErrorType err = svt_av1_enc_get_packet(e->handle, &packet, 0);
    if (err == EB_NoErrorEmptyQueue) return 0;
    if (err != EB_ErrorNone || !packet) return -1;
    uint32_t n = packet->n_filled_len;
    if (n <= cap) memcpy(buf, packet->p_buffer, n);
    *key = packet->pic_type == EB_AV1_KEY_PICTURE || packet->pic_type == EB_AV1_INTRA_ONLY_PICTURE;
    svt_av1_enc_release_out_buffer(&packet);
    return (int32_t)n;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* End of stream, then drain until the library hands the end back: it wants
 * that before deinit, and deinit otherwise drains itself, forever when the
 * end never comes back, as with an encoder that was sent no picture (one
 * dropped right after opening, say on an error): that one is sent a grey
 * picture first. The drain polls for at most two seconds; an encoder whose
 * end of stream did not come back by then is left open rather than hang its
 * caller. Returns 0 when closed, 1 when left open. */
int32_t shim_svt_close(ShimEncoder *e) {
    if (!e) return 0;
    pthread_mutex_lock(&lifecycle);
    if (e->pts == 0) {
        size_t luma = (size_t)e->width * e->height, chroma = luma / 4;
        uint8_t *grey = malloc(luma + 2 * chroma);
        if (grey) {
            memset(grey, 128, luma + 2 * chroma);
            (void)shim_svt_send(e, grey, grey + luma, grey + luma + chroma, e->width, e->width / 2, 0);
            free(grey);
        }
    }
    int ended = 0;
    EbBufferHeaderType eos;
    memset(&eos, 0, sizeof eos);
    eos.size = sizeof eos;
    eos.flags = EB_BUFFERFLAG_EOS;
    eos.pic_type = EB_AV1_INVALID_PICTURE;
    if (e->pts > 0 && svt_av1_enc_send_picture(e->handle, &eos) == EB_ErrorNone) {
        double deadline = now_seconds() + 2.0;
        while (!ended && now_seconds() < deadline) {
            EbBufferHeaderType *packet = NULL;
            EbErrorType err = svt_av1_enc_get_packet(e->handle, &packet, 0);
            if (err == EB_NoErrorEmptyQueue || (err == EB_ErrorNone && !packet)) {
                struct timespec pause = {0, 1000000};
                nanosleep(&pause, NULL);
                continue;
            }
            if (err != EB_ErrorNone) break;
            ended = (packet->flags & EB_BUFFERFLAG_EOS) != 0;
            svt_av1_enc_release_out_buffer(&packet);
        }
    }
    if (ended) {
        svt_av1_enc_deinit(e->handle);
        svt_av1_enc_deinit_handle(e->handle);
        free(e);
    }
    pthread_mutex_unlock(&lifecycle);
    return ended ? 0 : 1;
}
