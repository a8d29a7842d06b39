# session: IEC 61851 pilot states, authorisation, contactor sequencing, energy accounting, tariff.
