/* A built-in English-like corpus for the character language model when no text file is
 * given: sentences from a small stochastic grammar with nested structure (relative
 * clauses, prepositional phrases, coordination, quoted speech), subject-verb number
 * agreement, capitalisation and punctuation, in paragraphs; every byte from a seeded
 * xoshiro stream, so the same seed gives the same text on every platform. It has enough
 * regularity at several ranges (spelling, agreement across a clause, matching quotes and
 * commas) for a small recurrent net to learn in a few hundred steps, and a vocabulary of
 * about 40 symbols. Example code, not library code. */
#ifndef GOPT_EXAMPLES_BUILTIN_TEXT_H
#define GOPT_EXAMPLES_BUILTIN_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Exactly n bytes (n >= 1) of text into a malloc'd buffer *out (not NUL-terminated), or -1
 * when out of memory (*out NULL). */
int builtin_text_generate(uint64_t seed, size_t n, char **out);

#endif
