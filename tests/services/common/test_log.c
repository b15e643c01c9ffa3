/* Log lines about peer input: the budget that keeps a peer from flooding
 * the log (evp_log_allow), and text from outside made safe to quote
 * (evp_log_text). */
#include <criterion/criterion.h>
#include <string.h>

#include "evpipe/log.h"
#include "testkit.h"

Test(log_limit, a_burst_is_logged_then_lines_are_held_back_and_counted_until_the_next_window)
{
    evp_log_limit_t l = {.burst = 3, .window_ms = 2000};
    uint64_t held = 99;
    for (int i = 0; i < 3; i++) {
        cr_assert(evp_log_allow(&l, &held), "line %d of the burst", i);
        cr_assert_eq(held, 0);
    }
    for (int i = 0; i < 5; i++)
        cr_assert_not(evp_log_allow(&l, &held), "line %d beyond the burst was allowed", i);
    tk_sleep_ms(2100);
    cr_assert(evp_log_allow(&l, &held), "a new window allows again");
    cr_assert_eq(held, 5, "the lines held back are reported with the next one");
    cr_assert(evp_log_allow(&l, &held));
    cr_assert_eq(held, 0);
}

Test(log_text, control_characters_quotes_and_backslashes_cannot_break_a_line)
{
    char out[64];
    const char in[] = "gen-\x1b[31mred\"x\\y\nlevel=error\x7f";
    evp_log_text(out, sizeof out, in, sizeof in - 1);
    cr_assert_str_eq(out, "gen-?[31mred?x?y?level=error?");
    evp_log_text(out, 5, in, sizeof in - 1);
    cr_assert_str_eq(out, "gen-", "cut to the room there is");
}
