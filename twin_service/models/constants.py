"""Physical constants shared by every model (one definition each)."""

GAS_CONSTANT = 8.3144598  # J/(mol K), CODATA 2014, as used by Naumann et al. 2018
KELVIN = 273.15  # 0 degC in K
T_REF_K = 298.15  # 25 degC, reference temperature of the Arrhenius laws
SECONDS_PER_DAY = 86400.0
