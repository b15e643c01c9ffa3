/* Helpers the proto unit tests share (see proto_test.h). */
#include "proto_test.h"

#include <string.h>

ev_str_t pt_str(const char *s)
{
    return (ev_str_t){s, (uint32_t)strlen(s)};
}

ev_event_t pt_event(void)
{
    ev_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.user_id = 42;
    ev.user_name = pt_str("Zoë Ångström");
    ev.user_email = pt_str("zoe@example.com");
    ev.event_type = pt_str("purchase");
    ev.product_id = 7;
    ev.product_name = pt_str("Tea, green");
    ev.product_category = pt_str("Food");
    ev.product_price = 1250;
    ev.event_time = 1706702400000001LL;
    ev.source = pt_str("gen-0123456789abcdef");
    ev.partition = 3;
    ev.seq = 1;
    ev.published_at = 1706702400000002LL;
    return ev;
}
