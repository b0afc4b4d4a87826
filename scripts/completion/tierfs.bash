# bash completion for tierfs (installed as share/bash-completion/completions/tierfs).
_tierfs() {
  local cur prev words cword
  _init_completion || return
  local cmd="" sub="" i
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in
      -*) ;;
      *) if [ -z "$cmd" ]; then cmd="${words[i]}"; elif [ -z "$sub" ]; then sub="${words[i]}"; fi ;;
    esac
  done
  case "$prev" in
    --config | -c | --node-config | --manifest | -m | --report | --log-file | --output)
      _filedir
      return ;;
    --job-id | --uid | --gid | --size | --threads | -j | -o)
      return ;;
  esac
  case "$cmd" in
    "")
      COMPREPLY=($(compgen -W "mount topology check-config map stats bpf job stage cleanup --help --version" -- "$cur")) ;;
    mount)
      if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "--config --foreground --debug --fresh --log-file -o --help" -- "$cur"))
      else
        _filedir -d
      fi ;;
    cleanup)
      if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "--config --help" -- "$cur"))
      else
        _filedir -d
      fi ;;
    job)
      if [ -z "$sub" ]; then
        COMPREPLY=($(compgen -W "start stop env --node-config --help" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "--job-id --uid --gid --size --help" -- "$cur"))
      fi ;;
    stats)
      if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "--json --openmetrics --prometheus --all --output --node-config --help" -- "$cur"))
      else
        _filedir -d
      fi ;;
    stage)
      if [ -z "$sub" ]; then
        COMPREPLY=($(compgen -W "in out --help" -- "$cur"))
      elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "--manifest --threads --report --json --no-verify --no-progress --help" -- "$cur"))
      else
        _filedir
      fi ;;
    *)
      _filedir ;;
  esac
}
complete -F _tierfs tierfs
