# trajectory_runner must refuse malformed files with a non-zero exit, naming the file and the
# line, and must not crash. Each mutation of a good case (GOOD) below is written to DIR.
#   cmake -DRUNNER=... -DDIR=... -DGOOD=.../issue20_onecycle_linear.traj -P check_bad_files.cmake
file(MAKE_DIRECTORY ${DIR})
file(READ ${GOOD} good)

# name | text | the line the message must name (0: any "file:N:")
set(cases
  "header|gradopt-golden 1\nname x\nend\n|1"
  "empty|EMPTY|1"
  "no_end|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 2\n1 2\n|6"
  "short_values|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 3\n1.0 2.0\nend\n|6"
  "long_values|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 1\n1.0 2.0\nend\n|6"
  "not_number|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 2\n1.0 abc\nend\n|6"
  "step_range|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 1\n1\ngrad 2 1 0 1 1\n1\nend\n|7"
  "shape|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 1\n1\ngrad 1 1 0 1 2\n1 2\nend\n|7"
  "rank|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 9 1\n1\nend\n|5"
  "missing_grad|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 2\ntensor 0 group=0 1 1\n1\ngrad 1 1 0 1 1\n1\nend\n|9"
  "twice|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 1\n1\ngrad 1 1 0 1 1\n1\ngrad 1 1 0 1 1\n1\nend\n|9"
  "header_late|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\ntensor 0 group=0 1 1\n1\ngrad 1 1 0 1 1\n1\nclip norm max_norm=1\nend\n|9"
  "unknown|gradopt-trajectory 1\nname x\nfrobnicate 3\nend\n|3"
  "kv|gradopt-trajectory 1\nname x\noptim algo=sgd lr\nend\n|3"
  "group_range|gradopt-trajectory 1\nname x\noptim algo=sgd\ngroup 99 lr=1\nend\n|4"
  "child_order|gradopt-trajectory 1\nname x\noptim algo=sgd\nsched kind=chained\nchild 1 kind=step\nend\n|5"
  "bad_resume|gradopt-trajectory 1\nname x\noptim algo=sgd lr=0.1\nsteps 1\nresume 1\ntensor 0 group=0 1 1\n1\ngrad 1 1 0 1 1\n1\nend\n|10"
)
foreach(c IN LISTS cases)
  string(REPLACE "|" ";" parts "${c}")
  list(GET parts 0 name)
  list(GET parts 1 text)
  list(GET parts 2 line)
  string(REPLACE "\\n" "\n" text "${text}")
  if(text STREQUAL "EMPTY")
    set(text "")
  endif()
  file(WRITE ${DIR}/${name}.traj "${text}")
  execute_process(COMMAND ${RUNNER} --workdir ${DIR} ${DIR}/${name}.traj RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$")
    message(FATAL_ERROR "${name}: trajectory_runner exited with '${rc}' on a malformed file:\n${out}${err}")
  endif()
  if(line EQUAL 0)
    set(want "${name}.traj:[0-9]+: ")
  else()
    set(want "${name}.traj:${line}: ")
  endif()
  if(NOT out MATCHES "${want}" OR NOT out MATCHES "0 passed, 1 failed")
    message(FATAL_ERROR "${name}: expected '${want}' and '0 passed, 1 failed', got:\n${out}${err}")
  endif()
endforeach()

# The good file with text after its end; with a grad's values line cut short.
file(WRITE ${DIR}/after_end.traj "${good}extra\n")
string(REGEX REPLACE "(grad 3 1 1 1 5\n[^ ]+ [^ ]+) [^\n]*\n" "\\1\n" cut "${good}")
file(WRITE ${DIR}/cut_values.traj "${cut}")
foreach(name after_end cut_values)
  execute_process(COMMAND ${RUNNER} --workdir ${DIR} ${DIR}/${name}.traj RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$" OR NOT out MATCHES "${name}.traj:[0-9]+: ")
    message(FATAL_ERROR "${name}: expected a parse error naming the line, got (${rc}):\n${out}")
  endif()
endforeach()

# Good syntax, meaning the library refuses or the runner cannot map: a failure naming it.
string(REPLACE "algo=sgd" "algo=lbfgs" unknown_algo "${good}")
string(REPLACE "anneal_strategy=linear" "anneal_strategy=linear frobnicate=1" unknown_key "${good}")
string(REPLACE "lr=0.01 momentum=0.9" "lr=-1 momentum=0.9" negative_lr "${good}")
foreach(name unknown_algo unknown_key negative_lr)
  file(WRITE ${DIR}/${name}.traj "${${name}}")
  execute_process(COMMAND ${RUNNER} --workdir ${DIR} ${DIR}/${name}.traj RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$" OR NOT out MATCHES "FAIL issue20_onecycle_linear")
    message(FATAL_ERROR "${name}: expected a failure of the case, got (${rc}):\n${out}")
  endif()
endforeach()

# Every prefix of the good file (cut after each of its first 40 lines) is refused, no crash.
string(REPLACE ";" "," lines "${good}")
string(REPLACE "\n" ";" lines "${lines}")
set(prefix "")
set(i 0)
foreach(l IN LISTS lines)
  math(EXPR i "${i} + 1")
  if(i GREATER 40)
    break()
  endif()
  string(APPEND prefix "${l}\n")
  file(WRITE ${DIR}/prefix.traj "${prefix}")
  execute_process(COMMAND ${RUNNER} --workdir ${DIR} ${DIR}/prefix.traj RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$" OR NOT out MATCHES "prefix.traj:[0-9]+: ")
    message(FATAL_ERROR "prefix of ${i} lines: expected a parse error naming the line, got (${rc}):\n${out}")
  endif()
endforeach()
message(STATUS "trajectory_runner refused every malformed file, naming its line")
