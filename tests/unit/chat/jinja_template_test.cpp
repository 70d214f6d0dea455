// Jinja engine unit tests: each construct rendered with an exact expected string. The expected
// strings were produced by jinja2 3.1.6 as transformers 5.24 configures it (trim_blocks,
// lstrip_blocks, loopcontrols, its tojson/strftime_now overrides), with strftime_now pinned to
// 2024-08-05 09:30:15. Error cases check the moeforge::Error message.
#include <gtest/gtest.h>

#include <string>

#include "chat/chat_template.h"
#include "chat/jinja_template.h"
#include "common/error.h"
#include "test_util.h"

namespace moeforge::jinja {
namespace {

struct RenderCase {
  const char* name;
  const char* source;
  const char* expected;
};

struct ErrorCase {
  const char* name;
  const char* source;
  const char* message;
};

const char* const kContext = "{\"xs\": [1, 2, 3], \"d\": {\"a\": 1, \"b\": [1, 2], \"items\": \"key\"}, \"s\": \"  Hello World  \", \"n\": null, \"t\": true, \"f\": 1.5, \"e\": \"\", \"u\": \"h\\u00e9llo w\\u00f6rld\"}";

const RenderCase kRenderCases[] = {
    {"text_and_output",
     "a{{ 1 + 2 }}b",
     "a3b"},
    {"comment",
     "a{# hidden #}b",
     "ab"},
    {"whitespace_control_both",
     "a  {{- 'x' -}}  b",
     "axb"},
    {"trim_blocks",
     "{% if true %}\nyes\n{% endif %}\nafter",
     "yes\nafter"},
    {"lstrip_blocks",
     "x\n    {% if true %}\n    in\n    {% endif %}\ny",
     "x\n    in\ny"},
    {"lstrip_not_for_output",
     "x\n    {{ 'v' }}\n",
     "x\n    v"},
    {"plus_disables_lstrip",
     "x\n    {%+ if true %}k{% endif +%}\nz",
     "x\n    k\nz"},
    {"raw_block",
     "{% raw %}{{ not parsed }}{% endraw %}",
     "{{ not parsed }}"},
    {"trailing_newline_dropped",
     "abc\n",
     "abc"},
    {"if_elif_else",
     "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}many{% endif %},{% endfor %}",
     "one,two,many,"},
    {"for_loop_vars",
     "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
     "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|"},
    {"for_prev_next_cycle",
     "{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a', 'b') }};{% endfor %}",
     "-2-a;1-3-b;2--a;"},
    {"for_dict_items",
     "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
     "a=1;b=[1, 2];items=key;"},
    {"for_dict_keys",
     "{% for k in d %}{{ k }},{% endfor %}",
     "a,b,items,"},
    {"for_else",
     "{% for x in [] %}x{% else %}empty{% endfor %}",
     "empty"},
    {"for_filter",
     "{% for x in xs if x is odd %}{{ x }}{{ loop.length }},{% endfor %}",
     "12,32,"},
    {"for_break_continue",
     "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     "0134"},
    {"loop_scope",
     "{% set y = 1 %}{% for x in xs %}{% set y = y + x %}[{{ y }}]{% endfor %}{{ y }}",
     "[2][3][4]1"},
    {"set_tuple",
     "{% set a, b = 1, 'two' %}{{ a }}{{ b }}",
     "1two"},
    {"set_block",
     "{% set body %}inner {{ 1 }}{% endset %}[{{ body }}]",
     "[inner 1]"},
    {"namespace",
     "{% set ns = namespace(count=0, found=false) %}{% for x in xs %}{% set ns.count = ns.count + x %}{% endfor %}{{ ns.count }} {{ ns.found }}",
     "6 False"},
    {"macro_defaults",
     "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}",
     "Hi Bob! Hi Al?"},
    {"macro_recursion",
     "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}",
     "120"},
    {"macro_caller",
     "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold{% endcall %}",
     "<b>bold</b>"},
    {"macro_sees_globals",
     "{% set g = 'G' %}{% macro m() %}{{ g }}{{ xs|length }}{% endmacro %}{{ m() }}",
     "G3"},
    {"filter_trim_upper_lower",
     "[{{ s|trim }}][{{ s|upper }}][{{ s|lower }}][{{ 'hello world-foo(bar'|title }}][{{ 'hELLO'|capitalize }}]",
     "[Hello World][  HELLO WORLD  ][  hello world  ][Hello World-Foo(Bar][Hello]"},
    {"filter_tojson",
     "{{ d|tojson }}|{{ '\xc3""\xa9""\"\\n'|tojson }}|{{ [1.0, 2, none, true]|tojson }}",
     "{\"a\": 1, \"b\": [1, 2], \"items\": \"key\"}|\"\xc3""\xa9""\\\"\\n\"|[1.0, 2, null, true]"},
    {"filter_tojson_indent",
     "{{ d|tojson(indent=2) }}|{{ {'z': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ []|tojson(indent=2) }}",
     "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ],\n  \"items\": \"key\"\n}|{\"a\": 2, \"z\": 1}|[]"},
    {"filter_length_count",
     "{{ xs|length }}{{ 'h\xc3""\xa9""llo'|length }}{{ d|count }}{{ undefined_var|length }}",
     "3530"},
    {"filter_replace_join",
     "{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ xs|join(', ') }} {{ [{'n': 'x'}, {'n': 'y'}]|join('/', attribute='n') }}",
     "a+b+c bba 1, 2, 3 x/y"},
    {"filter_default",
     "[{{ missing|default('dflt') }}][{{ missing|d('d2') }}][{{ e|default('empty', true) }}][{{ n|default('x') }}]",
     "[dflt][d2][empty][None]"},
    {"filter_first_last_list",
     "{{ xs|first }}{{ xs|last }}{{ 'abc'|list }}{{ d|list }}{{ 'xyz'|first }}",
     "13['a', 'b', 'c']['a', 'b', 'items']x"},
    {"filter_string_int_float",
     "{{ 42|string ~ '!' }} {{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int(7) }} {{ '2.5'|float * 2 }} {{ 3|float }}",
     "42! 43 4 7 5.0 3.0"},
    {"filter_items_dictsort",
     "{{ d|items|list }} {{ {'b': 1, 'a': 2}|dictsort }}",
     "[('a', 1), ('b', [1, 2]), ('items', 'key')] [('a', 2), ('b', 1)]"},
    {"filter_select_reject_map",
     "{{ xs|select('odd')|list }} {{ xs|reject('odd')|list }} {{ [{'a': 1}, {'a': 2}]|map(attribute='a')|list }} {{ ['a', 'b']|map('upper')|join }}",
     "[1, 3] [2] [1, 2] AB"},
    {"filter_selectattr",
     "{{ [{'r': 'u', 'c': 1}, {'r': 'a', 'c': 2}, {'r': 'u', 'c': 3}]|selectattr('r', 'equalto', 'u')|map(attribute='c')|list }} {{ [{'x': 1}, {'x': 0}, {}]|rejectattr('x')|list }} {{ [{'k': 1}, {}]|selectattr('k', 'defined')|list }}",
     "[1, 3] [{'x': 0}, {}] [{'k': 1}]"},
    {"filter_indent",
     "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(first=true) }}|{{ 'x\\n\\ny'|indent('> ', blank=true) }}",
     "a\n  b\n\n  c|    a\n    b|x\n> \n> y"},
    {"filter_misc",
     "{{ -3|abs }} {{ 2.567|round(2) }} {{ xs|sum }} {{ [3, 1, 2]|sort }} {{ [3, 1, 2]|max }} {{ ['b', 'A', 'a']|unique|list }} {{ xs|reverse|list }} {{ '<&>'|e }} {{ 'x'|safe }}",
     "3 2.57 6 [1, 2, 3] 3 ['b', 'A'] [3, 2, 1] &lt;&amp;&gt; x"},
    {"tests",
     "{{ missing is defined }}{{ xs is defined }}{{ n is none }}{{ s is string }}{{ d is mapping }}{{ xs is iterable }}{{ 1 is iterable }}{{ xs is sequence }}{{ 1 is number }}{{ t is boolean }}{{ t is true }}{{ t is false }}{{ 1 is integer }}{{ f is float }}{{ 6 is divisibleby 3 }}{{ 'x' is in 'xyz' }}{{ missing is undefined }}{{ s is not none }}",
     "FalseTrueTrueTrueTrueTrueFalseTrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrue"},
    {"operators",
     "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ 1 + 2.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 10 / 5 }}",
     "3 -4 1 2 3.5 1024 a1None abab [1, 2] 3.0 0.30000000000000004 1e+20 1e-05 2.0"},
    {"comparisons_logic",
     "{{ 1 < 2 }}{{ 'a' >= 'b' }}{{ 2 in xs }}{{ 5 not in xs }}{{ 'a' in d }}{{ 1 == 1.0 }}{{ none or 'x' }}{{ 0 and 'y' }}{{ not e }}{{ 'yes' if t else 'no' }}{{ 'q' if false }}|",
     "TrueFalseTrueTrueTrueTruex0Trueyes|"},
    {"slicing",
     "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ 'hello'[1:3] }} {{ 'h\xc3""\xa9""llo'[::-1] }} {{ xs[-1] }} {{ xs[0:3:2] }}",
     "[3, 2, 1] [2, 3] [1, 2] el oll\xc3""\xa9""h 3 [1, 3]"},
    {"subscript_attr_dicts",
     "{{ d.a }} {{ d['a'] }} {{ d.items is defined }} {{ d['items'] }} {{ d.missing }}|{{ d.b.0 }} {{ xs.1 }}",
     "1 1 True key |1 2"},
    {"string_methods",
     "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ s.strip().startswith('Hell') }}{{ s.endswith('x') }}|{{ 'aXb'.upper() }}{{ 'aXb'.lower() }}|{{ 'x-y'.replace('-', '_') }}|{{ 'xxhixx'.strip('x') }}|{{ 'hello world'.title() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a/b/c'.rsplit('/', 1) }}",
     "Hello World|Hello World  |  Hello World|['a', 'b', '', 'c']|['a', 'b']|TrueFalse|AXBaxb|x_y|hi|Hello World|['a', 'b c']|['a/b', 'c']"},
    {"dict_methods",
     "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}",
     "1 None 5 ['a', 'b', 'items'] [1, [1, 2], 'key'] [('a', 1), ('b', [1, 2]), ('items', 'key')]"},
    {"dict_literal_and_global",
     "{{ dict(a=1, b='x') }} {{ {'k': [1, {'n': none}]} }} {{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ (1,) }} {{ (1, 'a') }}",
     "{'a': 1, 'b': 'x'} {'k': [1, {'n': None}]} [0, 1, 2] [1, 3, 5] (1,) (1, 'a')"},
    {"python_repr",
     "{{ ['it\\'s', \"q\\\"\", 'a\\nb'] }} {{ [true, none, 1.0, -0.5] }}",
     "[\"it's\", 'q\"', 'a\\nb'] [True, None, 1.0, -0.5]"},
    {"unicode_strip",
     "[{{ u.upper() }}][{{ '\xe3""\x80""\x80""x\xc2""\xa0""'|trim }}][{{ '\xe2""\x80""\x83""y'.strip() }}]",
     "[H\xc3""\x89""LLO W\xc3""\x96""RLD][x][y]"},
    {"strftime_now",
     "{{ strftime_now('%Y-%m-%d %H:%M:%S %d %b %Y') }}",
     "2024-08-05 09:30:15 05 Aug 2024"},
    {"string_escapes",
     "{{ 'tab\\there' }}|{{ '\\u00e9\\x41' }}|{{ 'keep\\d' }}",
     "tab\there|\xc3""\xa9""A|keep\\d"},
    {"with_block",
     "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }}",
     "3False"},
    {"filter_block",
     "{% filter upper %}shout {{ 'it' }}{% endfilter %}",
     "SHOUT IT"},
    {"generation_block",
     "{% generation %}gen{{ 1 }}{% endgeneration %}",
     "gen1"},
    {"undefined_prints_empty",
     "[{{ missing }}][{{ d.nope }}][{{ xs[10] }}]",
     "[][][]"},
    {"conditional_expr_chain",
     "{{ 'a' if n is none else 'b' }}{{ 1 if false else 2 if false else 3 }}",
     "a3"},
    {"bool_int_equality",
     "{{ true == 1 }}{{ [1, 2] == [1, 2] }}{{ {'a': 1} == {'a': 1} }}{{ 'a' != 'b' }}",
     "TrueTrueTrueTrue"},
};

const ErrorCase kErrorCases[] = {
    {"raise_exception", "{{ raise_exception('custom failure') }}", "custom failure"},  // jinja2: TemplateError
    {"unknown_filter", "{{ x|nosuchfilter }}", "unsupported filter 'nosuchfilter'"},  // jinja2: TemplateAssertionError
    {"unknown_test", "{% if x is nosuchtest %}{% endif %}", "unsupported test 'nosuchtest'"},  // jinja2: TemplateRuntimeError
    {"unknown_tag", "line1\n{% frobnicate %}", ":2: unknown tag 'frobnicate'"},  // jinja2: TemplateSyntaxError
    {"include_unsupported", "{% include 'x.html' %}", "unsupported tag 'include'"},  // jinja2: TypeError
    {"unknown_method", "{{ 'abc'.frobnicate() }}", "unknown method 'frobnicate'"},  // jinja2: UndefinedError
    {"unsupported_str_method", "{{ 'abc'.format(1) }}", "unsupported method 'str.format'"},  // jinja2 renders this; moeforge rejects it as unsupported
    {"list_mutation", "{{ xs.append(4) }}", "unsafe"},  // jinja2: SecurityError
    {"unknown_function", "{{ nosuch(1) }}", "unknown function 'nosuch'"},  // jinja2: UndefinedError
    {"unclosed_block", "{% if true %}x", "unexpected end of template"},  // jinja2: TemplateSyntaxError
    {"unclosed_output", "{{ 1 + ", "unexpected end of template"},  // jinja2: TemplateSyntaxError
    {"bad_char", "{{ 1 $ 2 }}", "unexpected char '$'"},  // jinja2: TemplateSyntaxError
    {"unterminated_comment", "{# never closed", "Missing end of comment tag"},  // jinja2: TemplateSyntaxError
    {"attr_of_undefined", "{{ missing.attr }}", "'missing' is undefined"},  // jinja2: UndefinedError
    {"add_str_int", "{{ 'a' + 1 }}", "can only concatenate str"},  // jinja2: TypeError
    {"division_by_zero", "{{ 1 / 0 }}", "division by zero"},  // jinja2: ZeroDivisionError
    {"tojson_undefined", "{{ missing|tojson }}", "not JSON serializable"},  // jinja2: TypeError
    {"namespace_assign_non_ns", "{% set x = 1 %}{% set x.y = 2 %}", "namespace"},  // jinja2: TemplateRuntimeError
    {"unbalanced_paren", "{{ (1 + 2 }}", "unexpected"},  // jinja2: TemplateSyntaxError
    {"macro_too_many_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "takes not more than 1"},  // jinja2: TypeError
    {"deep_recursion", "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", "recursion"},  // jinja2: RecursionError
    {"deep_nesting", "{{ ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))) }}", "nested too deeply"},  // jinja2: RecursionError
    {"huge_repeat", "{{ 'x' * 10000000000 }}", "too large"},  // jinja2: MemoryError
    {"none_not_iterable", "{% for x in n %}{% endfor %}", "not iterable"},  // jinja2: TypeError
};

RenderOptions fixed_now() {
  RenderOptions options;
  options.now = chat::parse_datetime("2024-08-05T09:30:15");
  return options;
}

TEST(JinjaTemplate, RendersEveryConstructLikeJinja2) {
  Json context = Json::parse(kContext);
  for (const auto& c : kRenderCases) {
    SCOPED_TRACE(c.name);
    std::string got;
    try {
      got = Template::parse(c.source, c.name).render(context, fixed_now());
    } catch (const Error& e) {
      ADD_FAILURE() << c.name << " threw: " << e.what();
      continue;
    }
    EXPECT_EQ(got, c.expected) << "template: " << c.source;
  }
}

TEST(JinjaTemplate, ReportsClearErrors) {
  Json context = Json::parse(kContext);
  for (const auto& c : kErrorCases) {
    SCOPED_TRACE(c.name);
    MOEFORGE_EXPECT_ERROR(Template::parse(c.source, "unit.jinja").render(context, fixed_now()), c.message);
  }
}

TEST(JinjaTemplate, ErrorsNameTheSourceAndLine) {
  MOEFORGE_EXPECT_ERROR(Template::parse("ok\n\n{{ x|bogus }}", "my_template").render(Json::object()), "my_template:3: unsupported filter 'bogus'");
  MOEFORGE_EXPECT_ERROR(Template::parse("a\n{{ raise_exception('boom') }}", "t.jinja").render(Json::object()), "t.jinja:2: boom");
}

TEST(JinjaTemplate, RenderIsRepeatableAndContextIsOptional) {
  Template t = Template::parse("{{ x|default('none') }}");
  EXPECT_EQ(t.render(nullptr), "none");
  EXPECT_EQ(t.render(Json{{"x", 5}}), "5");
  EXPECT_EQ(t.render(Json{{"x", 5}}), "5");
  MOEFORGE_EXPECT_ERROR(t.render(Json::array()), "must be a JSON object");
}

TEST(JinjaTemplate, NeverCrashesOnMalformedInput) {
  const char* const inputs[] = {"{{", "{%", "{#", "{{ }}", "{% %}", "{% for %}", "{% set %}", "{{ [ }}", "{{ { }}", "{{ 'abc }}",
                                "{% if %}{% endif %}", "{% endfor %}", "{{ a. }}", "{{ a[ }}", "{{ a|}}", "{{ x is }}", "\xff\xfe{{ 1 }}",
                                "{% macro %}", "{% raw %}", "{{ 1 if }}", "{{ (((( }}", "{{ '\\x4' }}", "}}{{", "{% else %}"};
  for (const char* input : inputs) {
    try {
      Template::parse(input, "fuzz").render(Json::object());
    } catch (const Error&) {
      // a clear error is fine; anything else (crash, other exception type) fails the test
    }
  }
}

}  // namespace
}  // namespace moeforge::jinja
